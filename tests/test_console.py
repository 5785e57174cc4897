"""The operators' console in a real headless browser (Debian's chromium driven by Playwright)
against a served Cordon with a small demo town, on both backends.

A town operator signs in, imports a malformed ledger and sees its row errors, imports the
fixed file, schedules and opens a round, uploads results (a positive seals a unit), approves
the downgrade proposal that seven quiet days bring, reveals a resident (a logged read), and
reads the dashboard, whose every number must equal the API's. A committee's staff see only
their compounds on every page; a volunteer reaches no operator's page; a session that ends
under a form keeps the form.

``CORDON_SCREENSHOTS=1`` writes the pages' screenshots to docs/console/ (docs/console.md)."""

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from services.logistics.models import HelpRequest
from services.registry.demo import DEMO_PASSWORD
from services.registry.models import kernel as registry_kernel
from shared.auth import Principal
from tests.conftest import BACKENDS, IN_CI, SERVICES, skip_unless_reachable
from tests.console_server import TOWN_TIME_ZONE, Served, served
from tests.support import id_number

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parent.parent / "docs" / "console"
TOWN_ZONE = ZoneInfo(TOWN_TIME_ZONE)
LEDGER_HEADER = "compound,building,unit,room,household,name,document_number,phone,tags,care_notes"
STATUS_LABELS = {"normal": "normal", "closed": "closed", "epidemic_free": "epidemic-free"}
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if IN_CI:
            raise AssertionError("CI needs Debian's chromium for the console tests")
        pytest.skip("chromium is not installed here")
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


@pytest.fixture(scope="module", params=BACKENDS)
def town(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    if request.param == "services":
        skip_unless_reachable(*SERVICES)
    with served(request.param, tmp_path_factory.mktemp("console"), residents=400) as server:
        server.backend = request.param  # type: ignore[attr-defined]
        yield server


def shot(town: Served, page: Any, name: str, *, at: str | None = None) -> None:
    """Screenshots for docs/console.md, from the embedded run only, when asked for."""
    if os.environ.get("CORDON_SCREENSHOTS") == "1" and town.backend == "embedded":  # type: ignore[attr-defined]
        SHOTS.mkdir(parents=True, exist_ok=True)
        if at:
            page.locator(at).scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"{name}.png"))


def signed_in(browser: Any, town: Served, username: str) -> Any:
    context = browser.new_context(viewport={"width": 1200, "height": 760}, locale="en-US")
    context.add_init_script("localStorage.setItem('cordon.lang', 'en')")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    loaded: list[int] = []
    page.on("requestfinished", lambda request: loaded.append(request.sizes()["responseBodySize"]))
    page.loaded = loaded
    page.goto(f"{town.base}/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("form.signin button[type=submit]")
    page.wait_for_selector("#who:not(:empty)")
    return page


def go(page: Any, town: Served, hash_: str, ready: str) -> None:
    """Open a page of the console and wait until it is drawn whole."""
    page.evaluate(
        "() => { const m = document.getElementById('main'); if (m) delete m.dataset.shown; }"
    )
    page.goto(f"{town.base}/console/{hash_}")
    name = hash_.removeprefix("#/").split("/")[0].split("?")[0]
    page.wait_for_selector(f"main[data-shown='{name}'], main > p.error, #not-for-role")
    # A page that could not be drawn says why (its error replaces it): say it here, at once,
    # unless the error is what the test waits for.
    failed = page.locator("main > p.error")
    if ".error" not in ready and failed.count():
        raise AssertionError(f"{hash_} could not be drawn: {failed.first.inner_text()}")
    page.wait_for_selector(ready)


def eventually(check: Any, *, what: str, seconds: float = 30) -> Any:
    import time

    deadline = time.monotonic() + seconds
    while True:
        answer = check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds}s")
        time.sleep(0.2)


def every(api: httpx.Client, path: str, **params: Any) -> list[Any]:
    items: list[Any] = []
    cursor = None
    while True:
        answer = api.get(
            path, params={**params, "limit": 500, **({"cursor": cursor} if cursor else {})}
        )
        assert answer.status_code == 200, answer.text
        items += answer.json()["items"]
        cursor = answer.json()["next_cursor"]
        if not cursor:
            return items


def expected_dashboard(api: httpx.Client) -> dict[tuple[str, str], str]:
    """Every figure of the dashboard, from the API's lists and counts, keyed by compound."""
    figures: dict[tuple[str, str], str] = {}
    compounds = api.get("/v1/compounds").json()
    for compound in compounds:
        cid = compound["id"]
        figures[cid, "status"] = STATUS_LABELS[compound["status"]]
        for level in ("sealed", "controlled", "precaution", "none"):
            figures[cid, f"households.{level}"] = figures[cid, f"people.{level}"] = "0"
        since = datetime.now(TOWN_ZONE).replace(hour=0, minute=0, second=0, microsecond=0)
        figures[cid, "cases_today"] = str(
            len(every(api, "/v1/cases", compound_id=cid, confirmed_since=since.isoformat()))
        )
        pending = every(api, "/v1/transfers", compound_id=cid, status="pending")
        figures[cid, "transfers_pending"] = str(len(pending))
        overdue = every(api, "/v1/transfers", compound_id=cid, overdue="true")
        figures[cid, "transfers_overdue"] = str(len(overdue))
        figures[cid, "days_since_positive"] = "–"
        overdue_requests = every(api, "/v1/requests", compound_id=cid, overdue="true")
        figures[cid, "requests_overdue"] = str(len(overdue_requests))
        for state in ("queued", "failed"):
            messages = every(api, "/v1/messages", compound_id=cid, state=state)
            figures[cid, f"alerts_{state}"] = str(len(messages))
    for row in api.get("/v1/zones/population", params={"by": "compound"}).json():
        level = row["level"] or "none"
        figures[row["compound_id"], f"households.{level}"] = str(row["households"])
        figures[row["compound_id"], f"people.{level}"] = str(row["people"])
    for clock in every(api, "/v1/compound-clocks"):
        if clock["days_without_positive"] is not None:
            figures[clock["compound_id"], "days_since_positive"] = str(
                clock["days_without_positive"]
            )
    rounds = sorted(
        every(api, "/v1/rounds", status="open"), key=lambda r: r["opened_at"], reverse=True
    )
    covered: set[str] = set()
    for round_ in rounds:
        coverage = api.get(f"/v1/rounds/{round_['id']}/coverage", params={"by": "compound"})
        for group in coverage.json()["groups"]:
            if group["place_id"] in covered:
                continue
            covered.add(group["place_id"])
            for name in ("expected", "sampled", "resulted", "positive", "missed"):
                figures[group["place_id"], name] = str(group[name])
    return figures


def shown_dashboard(page: Any) -> dict[tuple[str, str], str]:
    cells = page.eval_on_selector_all(
        "#dashboard tbody tr [data-figure]",
        "cells => cells.map(c => "
        "[c.closest('tr').dataset.compound, c.dataset.figure, c.textContent.trim()])",
    )
    return {(compound, figure): text for compound, figure, text in cells}


async def entered_earlier(town: Served, request_id: str, *, hours: int) -> None:
    """A request as if entered ``hours`` ago: its due time moves back as far."""
    logistics = town.platform.runtime("logistics")
    async with logistics.uow(Principal.system()) as uow:
        request = await uow.session.get(HelpRequest, uuid.UUID(request_id))
        assert request is not None
        request.created_at -= timedelta(hours=hours)
        request.due_at -= timedelta(hours=hours)
        await uow.commit()


def short_time(moment: datetime) -> str:
    """A time as the console shows it in English (Intl's short date and time, en-US)."""
    clock = f"{(moment.hour % 12) or 12}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'}"
    return f"{moment.month}/{moment.day}/{moment.year % 100:02d}, {clock}"


def ledger_csv(rows: list[list[str]]) -> bytes:
    return ("\n".join([LEDGER_HEADER, *(",".join(row) for row in rows)]) + "\n").encode()


def test_an_operator_runs_a_night_from_the_console(
    browser: Any, town: Served, tmp_path: Path
) -> None:
    api = town.api("operator")
    compounds = api.get("/v1/compounds").json()
    first = compounds[0]
    units = api.get(
        "/v1/zones/population", params={"compound_id": first["id"], "by": "unit"}
    ).json()
    unit = units[0]
    page = signed_in(browser, town, "operator")
    page.wait_for_selector("#dashboard")
    # A weak connection's budget: the console and the dashboard's data, first load.
    assert sum(page.loaded) < 200_000, page.loaded
    nav = page.inner_text("#nav")
    for label in ("Town", "Residents", "Ledger import", "Rounds", "Cases", "Transfers"):
        assert label in nav

    # A malformed ledger: its rows come back as a table; nothing is written.
    place = [first["code"], unit["building_code"], unit["unit_code"]]
    good = [[*place, "901", "H901", "林晓", id_number(), "13800000001", "", ""]]
    bad = [
        [*place, "902", "H902", "周敏", "12345", "", "", ""],
        [first["code"], "99", "1", "903", "H903", "吴刚", id_number(), "", "", ""],
    ]
    broken = tmp_path / "ledger.csv"
    broken.write_bytes(ledger_csv(good + bad))
    go(page, town, "#/import", "#import-form")
    page.set_input_files("#ledger-file", str(broken))
    page.click("#import-form button[type=submit]")
    page.wait_for_selector("#row-errors")
    errors = page.eval_on_selector_all(
        "#row-errors tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert [(row, column) for row, column, _ in errors] == [
        ("3", "document_number"),
        ("4", "building"),
    ]
    assert every(api, "/v1/residents", name="林晓") == []
    shot(town, page, "ledger-errors")
    fixed = tmp_path / "ledger-fixed.csv"
    bad[0][6] = id_number()
    bad[1][1] = unit["building_code"]
    fixed.write_bytes(ledger_csv(good + bad))
    page.set_input_files("#ledger-file", str(fixed))
    page.click("#import-form button[type=submit]")
    page.wait_for_selector("#import-status.ok")
    assert "Imported 3 rows: 3 new" in page.inner_text("#import-status")
    assert [r["name"] for r in every(api, "/v1/residents", name="林晓")] == ["林晓"]
    town.caught_up()

    # Schedule a single-tube round over the first compound and open it.
    go(page, town, "#/rounds", "#schedule-form")
    page.fill("#round-name", "Night round 1")
    page.select_option("select[name=pool_size]", "1")
    page.check(f"input[name=scope_id][value='{first['id']}']")
    shot(town, page, "rounds")
    page.click("#schedule-form button[type=submit]")
    page.wait_for_url("**/#/round/*")
    page.click("#round-open")
    page.wait_for_selector("#round-status:text('open')")
    round_id = page.url.rsplit("/", 1)[1]
    [round_] = [r for r in every(api, "/v1/rounds") if r["id"] == round_id]
    assert (round_["status"], round_["pool_size"], round_["scope"]["ids"]) == (
        "open",
        1,
        [first["id"]],
    )

    # The samplers record four tubes (their phones, not the console), the lab's file is
    # uploaded here: one positive, and a row naming a tube nobody took.
    members = every(api, "/v1/results", round_id=round_id)
    in_unit = [m["resident_id"] for m in members if m["unit_id"] == unit["unit_id"]][:4]
    now = datetime.now(UTC)
    tubes = [
        {
            "code": f"CT{n:04d}",
            "member_ids": [member],
            "collector": "Nurse Li",
            "collected_at": (now - timedelta(minutes=1)).isoformat(),
        }
        for n, member in enumerate(in_unit)
    ]
    recorded = api.post(f"/v1/rounds/{round_id}/tubes/batch", json={"tubes": tubes})
    assert recorded.json()["accepted"] == 4, recorded.text
    results = tmp_path / "lab.csv"
    at = now.isoformat()
    lines = ["tube_code,result,lab,resulted_at", f"CT0000,positive,Lab,{at}"]
    lines += [f"CT000{n},negative,Lab,{at}" for n in (1, 2, 3)] + [f"ZZ9999,negative,Lab,{at}"]
    results.write_text("\n".join(lines) + "\n")
    page.set_input_files("#results-file", str(results))
    page.click("#results-form button[type=submit]")
    page.wait_for_selector("#results-row-errors")
    assert "4 tubes applied (1 positive, 3 negative), 1 rows refused" in page.inner_text(
        "#results-status"
    )
    assert "ZZ9999" in page.inner_text("#results-row-errors")
    shot(town, page, "round", at="#results-status")

    # The case seals its unit (zone policy, over the bus); seven quiet days later a downgrade
    # is proposed, and the operator approves it on the compound page with a reason.
    def sealed() -> bool:
        zones = api.get("/v1/zones", params={"compound_id": first["id"]}).json()["items"]
        return any(z["level"] == "sealed" for z in zones)

    eventually(sealed, what="the case's unit sealed")
    later = datetime.now(UTC) + timedelta(days=8)
    registry = town.platform.runtime("registry")
    [job] = [j for j in registry.spec.periodic if j.name == "zone-downgrades"]
    town.run(registry.tick(job, now=later))
    pending = api.get("/v1/zones/proposals", params={"status": "pending"}).json()["items"]
    # The demo town has a sealed building of its own elsewhere: this compound's proposal.
    [proposal] = [p for p in pending if p["compound_id"] == first["id"]]
    go(page, town, f"#/compound/{first['id']}", "#unit-grid")
    assert page.locator("#unit-grid td[data-level=sealed]").count() >= 1
    # Sampled / expected per building and unit: the open round's coverage of each.
    shown = dict(
        page.eval_on_selector_all(
            "#unit-grid [data-coverage]",
            "cells => cells.map(c => [c.dataset.coverage, c.textContent])",
        )
    )
    for by in ("building", "unit"):
        coverage = api.get(
            f"/v1/rounds/{round_id}/coverage", params={"by": by, "compound_id": first["id"]}
        ).json()
        for group in coverage["groups"]:
            assert shown[group["place_id"]] == f"{group['sampled']}/{group['expected']}", by
    # Its missed lists, asked for with the page's other reads, as the API lists them.
    page.wait_for_selector("[data-list=missed-twice]")
    for kind, path in (
        ("missed", f"/v1/rounds/{round_id}/missed"),
        ("missed-twice", "/v1/coverage/missed-twice"),
    ):
        listed = api.get(path, params={"compound_id": first["id"], "limit": 50}).json()
        names = page.eval_on_selector_all(
            f"table[data-list={kind}] tbody tr", "rows => rows.map(r => r.cells[1].textContent)"
        )
        assert names == [r["name"] for r in listed["items"]], kind
    shot(town, page, "compound")
    row = page.locator(f"#proposals tr[data-proposal='{proposal['id']}']")
    row.locator("input[name=note]").fill("seven quiet days, checked on site")
    row.locator("button", has_text="Approve").click()
    page.wait_for_selector("p#proposals")
    decided = api.get("/v1/zones/proposals", params={"status": "approved"}).json()["items"]
    assert [(p["id"], p["note"]) for p in decided] == [
        (proposal["id"], "seven quiet days, checked on site")
    ]

    # A resident's numbers stay masked until revealed; the reveal is a logged API read.
    go(
        page,
        town,
        f"#/list/residents?compound_id={first['id']}&name=林晓",
        "table[data-list=residents]",
    )
    page.click("table[data-list=residents] a")
    page.wait_for_selector("#resident-phone")
    masked = page.inner_text("#resident-phone")
    assert masked != "13800000001" and "*" in masked
    page.click("#reveal")
    page.wait_for_selector("#resident-phone:text('13800000001')")
    shot(town, page, "resident")

    async def reveals() -> list[Any]:
        async with registry.uow(Principal.system()) as uow:
            table = registry_kernel.access_log
            return list((await uow.session.execute(select(table))).all())

    resident_id = page.url.rsplit("/", 1)[1]
    logged = [e for e in town.run(reveals()) if resident_id in [str(i) for i in e.record_ids]]
    assert [(e.role, e.fields) for e in logged] == [("town_operator", "birth_date,id_number,phone")]

    # The door-to-door list of the round: the sealed unit's people, one sheet per building.
    go(page, town, f"#/round/{round_id}/door-to-door?compound_id={first['id']}", "section.sheet")
    page.emulate_media(media="print")
    shot(town, page, "door-to-door-print")
    page.emulate_media(media="screen")

    # The dashboard: every number equals the API's.
    go(page, town, "#/dashboard", "#dashboard")
    shown = shown_dashboard(page)
    expected = expected_dashboard(api)
    assert shown == expected
    assert shown[first["id"], "positive"] == "1" and shown[first["id"], "transfers_pending"] == "1"
    shot(town, page, "dashboard")
    page.select_option("#lang", "zh-CN")
    page.wait_for_selector("#dashboard th:text('距上次阳性天数')")
    in_chinese = shown_dashboard(page)
    assert in_chinese[first["id"], "status"] == "正常"
    assert {k: v for k, v in in_chinese.items() if k[1] != "status"} == {
        k: v for k, v in expected.items() if k[1] != "status"
    }
    shot(town, page, "dashboard-zh")
    page.select_option("#lang", "en")
    page.wait_for_selector("#dashboard th:text('Days since last positive')")

    # The case is in the transfer queue; its contacts (its household) are on the cases page.
    go(page, town, "#/transfers?status=pending", "#transfer-queue")
    [case] = every(api, "/v1/transfers", status="pending")
    assert page.locator("#transfer-queue tbody tr").count() == 1
    shot(town, page, "transfers")
    go(page, town, f"#/cases?case={case['id']}", "#contacts table")
    contacts = api.get(f"/v1/cases/{case['id']}/contacts").json()
    assert page.locator("#contacts tbody tr").count() == len(contacts) > 0
    shot(town, page, "cases")
    go(
        page,
        town,
        f"#/residents?compound_id={first['id']}&zone=controlled",
        "[data-list=residents]",
    )
    controlled = every(api, "/v1/residents", compound_id=first["id"], zone="controlled")
    assert page.locator("table[data-list=residents] tbody tr").count() == len(controlled) > 0
    shot(town, page, "residents")
    assert page.errors == []
    page.context.close()


def test_committee_staff_see_only_their_compounds_on_every_page(browser: Any, town: Served) -> None:
    everyone = {c["id"] for c in town.api("operator").get("/v1/compounds").json()}
    api = town.api("committee1")
    theirs = {c["id"] for c in api.get("/v1/compounds").json()}
    assert theirs and theirs < everyone
    page = signed_in(browser, town, "committee1")
    page.wait_for_selector("#dashboard")
    rows = page.eval_on_selector_all(
        "#dashboard tbody tr", "rows => rows.map(r => r.dataset.compound)"
    )
    assert set(rows) == theirs
    assert shown_dashboard(page) == expected_dashboard(api)

    go(page, town, "#/residents", "#resident-search")
    options = page.eval_on_selector_all(
        "select[name=compound_id] option", "os => os.map(o => o.value).filter(Boolean)"
    )
    assert set(options) == theirs
    go(page, town, "#/rounds", "#schedule-form")
    scope = page.eval_on_selector_all("input[name=scope_id]", "xs => xs.map(x => x.value)")
    assert set(scope) == theirs
    listed = page.eval_on_selector_all(
        "#rounds tbody a", "xs => xs.map(x => x.getAttribute('href'))"
    )
    assert {href.rsplit("/", 1)[1] for href in listed} == {
        r["id"] for r in every(api, "/v1/rounds")
    }

    other = sorted(everyone - theirs)[0]
    go(page, town, f"#/compound/{other}", "main .error")
    assert "in your scope" in page.inner_text("main .error")
    go(page, town, f"#/list/residents?compound_id={other}", "main [data-list], main .error")
    assert page.locator("table[data-list=residents] tbody tr").count() == 0
    go(page, town, f"#/compound/{sorted(theirs)[0]}", "#unit-grid")
    assert page.errors == []
    page.context.close()


def test_a_volunteer_reaches_no_operators_page(browser: Any, town: Served) -> None:
    page = signed_in(browser, town, "volunteer1")
    page.wait_for_selector("#not-for-role")
    assert page.locator("#nav a").count() == 0
    compound = town.api("operator").get("/v1/compounds").json()[0]["id"]
    for hash_ in ("#/dashboard", f"#/compound/{compound}", "#/residents", "#/import", "#/rounds"):
        go(page, town, hash_, "#not-for-role")
    shot(town, page, "volunteer")
    page.context.close()


def test_a_session_that_ends_under_a_form_keeps_the_form(browser: Any, town: Served) -> None:
    page = signed_in(browser, town, "operator")
    go(page, town, "#/rounds", "#schedule-form")
    page.fill("#round-name", "Typed before the session ended")
    page.check("input[name=scope_id] >> nth=1")
    # The session ends on the server (signed out elsewhere): access and refresh are spent.
    refresh = page.evaluate("JSON.parse(sessionStorage.getItem('cordon.session')).refresh")
    ended = httpx.post(f"{town.base}/v1/auth/sign-out", json={"refresh_token": refresh})
    assert ended.status_code == 204, ended.text
    page.click("#schedule-form button[type=submit]")
    page.wait_for_selector("dialog[open] input[type=password]")
    assert page.input_value("#round-name") == "Typed before the session ended"
    page.fill("dialog[open] input[type=password]", DEMO_PASSWORD)
    page.click("dialog[open] button[type=submit]")
    page.wait_for_url("**/#/round/*")
    page.wait_for_selector("h1:text('Typed before the session ended')")

    # An access token past its life: the console spends the refresh token (it rotates) and
    # carries on, asking nothing.
    stale = page.evaluate(
        "() => { const s = JSON.parse(sessionStorage.getItem('cordon.session'));"
        " s.access = 'expired'; sessionStorage.setItem('cordon.session', JSON.stringify(s));"
        " return s.refresh; }"
    )
    page.reload()
    page.wait_for_selector("main[data-shown='round'] h1:text('Typed before the session ended')")
    assert page.locator("dialog[open]").count() == 0
    assert page.evaluate("JSON.parse(sessionStorage.getItem('cordon.session')).refresh") != stale
    page.context.close()


def test_logistics_and_notify_pages_show_the_apis_figures(browser: Any, town: Served) -> None:
    api = town.api("operator")
    town.caught_up()
    first = api.get("/v1/compounds").json()[0]
    [resident] = api.get("/v1/residents", params={"compound_id": first["id"], "limit": 1}).json()[
        "items"
    ]
    made = api.post(
        "/v1/requests",
        json={"resident_id": resident["id"], "kind": "baby_supplies", "details": "Formula"},
        headers={"Idempotency-Key": "console-request-1"},
    )
    assert made.status_code == 201, made.text
    # A second one, entered two days ago: past its target (a day at most) by now.
    late = api.post(
        "/v1/requests",
        json={"resident_id": resident["id"], "kind": "baby_supplies", "details": "Nappies"},
        headers={"Idempotency-Key": "console-request-2"},
    )
    assert late.status_code == 201, late.text
    town.run(entered_earlier(town, late.json()["id"], hours=48))
    town_id = api.get("/v1/auth/me").json()["scope"]["towns"][0]
    item = api.post(
        "/v1/items",
        json={"town_id": town_id, "name": "Rice", "unit": "kg", "perishable": False},
        headers={"Idempotency-Key": "console-item-1"},
    )
    assert item.status_code == 201, item.text
    received = api.post(
        "/v1/stock/receipts",
        json={
            "holder_id": first["id"],
            "source": "donation",
            "donor": "Riverside Rice Co.",
            "donor_contact": "13800000002",
            "lines": [{"item_id": item.json()["id"], "quantity": "5000", "batch": "R-1"}],
        },
        headers={"Idempotency-Key": "console-receipt-1"},
    )
    assert received.status_code == 201, received.text
    planned = api.post(
        "/v1/distribution-plans",
        json={
            "town_id": town_id,
            "name": "Rice, week 1",
            "scope": {"kind": "compounds", "ids": [first["id"]]},
            "lines": [{"item_id": item.json()["id"], "label": "Rice 5 kg", "per_household": 5}],
        },
        headers={"Idempotency-Key": "console-plan-1"},
    )
    assert planned.status_code == 201, planned.text
    page = signed_in(browser, town, "operator")
    page.wait_for_selector("#dashboard")
    nav = page.inner_text("#nav")
    for label in ("Stock", "Distribution", "Requests", "Broadcasts", "Messages"):
        assert label in nav
    # Per compound: overdue requests and alerts queued / failed, each the API's list's length.
    shown = shown_dashboard(page)
    expected = expected_dashboard(api)
    assert shown == expected
    assert shown[first["id"], "requests_overdue"] == "1"
    page.click(f"tr[data-compound='{first['id']}'] [data-figure=requests_overdue]")
    page.wait_for_selector("main[data-shown=list] table[data-list=requests]")
    assert page.locator("table[data-list=requests] tbody tr").count() == 1

    # The board: each column's count is the API's, with the request's service-time clock.
    go(page, town, "#/requests", "#request-board")
    opened = every(api, "/v1/requests", status="open")
    assert page.inner_text("[data-figure='requests.open']") == str(len(opened)) != "0"
    card = page.locator(f"[data-request='{made.json()['id']}'] .clock")
    assert "left" in card.inner_text()
    # Its due time in the town's clock (/v1/auth/me's time_zone), not the browser's.
    assert api.get("/v1/auth/me").json()["time_zone"] == TOWN_TIME_ZONE
    due = datetime.fromisoformat(made.json()["due_at"]).astimezone(TOWN_ZONE)
    assert " ".join(card.get_attribute("title").split()) == short_time(due)
    shot(town, page, "requests")
    go(page, town, "#/stock", "#balances")
    balances = api.get("/v1/stock/balances").json()
    assert page.locator("#balances tbody tr").count() == len(balances) > 0
    assert "Riverside Rice Co." in page.inner_text("#donations")
    shot(town, page, "stock")
    plan_id = planned.json()["id"]
    go(page, town, f"#/plan/{plan_id}", "#undelivered")
    pending = api.get(f"/v1/distribution-plans/{plan_id}/undelivered").json()
    undelivered = sum(len(b["households"]) for b in pending)
    assert page.inner_text("[data-figure=undelivered]") == str(undelivered) != "0"
    shot(town, page, "plan")
    # Cancelled, the plan says so on its page and in the list; what it lists is not pending.
    cancelled = api.post(
        f"/v1/distribution-plans/{plan_id}/cancel", json={"reason": "rice came from the town"}
    )
    assert cancelled.status_code == 200, cancelled.text
    go(page, town, "#/plans", "#plans")
    assert "cancelled" in page.inner_text(f"#plans tr:has(a[href='#/plan/{plan_id}'])")
    go(page, town, f"#/plan/{plan_id}", "#plan-cancelled")
    assert "rice came from the town" in page.inner_text("#plan-cancelled")
    assert "cancelled with the plan" in page.inner_text("main h2:has([data-figure=undelivered])")

    # Broadcasts previewed over what the API accepts: the recipients are the API's preview's.
    go(page, town, "#/broadcasts", "#broadcast-form")
    page.select_option("#broadcast-template", "sealed")
    page.fill("input[name='var.area']", "Building 1")
    scopes = [
        ({"kind": "compounds", "ids": [first["id"]]}, [first["id"]]),
        ({"kind": "tag", "tag": "elderly", "ids": [first["id"]]}, [first["id"]]),
        ({"kind": "zone_level", "zone_level": "sealed", "ids": []}, []),
    ]
    for scope, ticked in scopes:
        page.select_option("#scope-kind", scope["kind"])
        if scope["kind"] == "tag":
            page.select_option("#scope-tag", "elderly")
        for compound_id in ticked:
            page.check(f"#broadcast-form input[name=scope_id][value='{compound_id}']")
        page.click("#broadcast-preview")
        page.wait_for_selector("#preview-texts")
        expected = api.post(
            "/v1/broadcasts/preview",
            json={
                "town_id": town_id,
                "scope": scope,
                "template_key": "sealed",
                "variables": {"area": "Building 1", "time": datetime.now(UTC).isoformat()},
                "valid_until": (datetime.now(UTC) + timedelta(hours=6)).isoformat(),
            },
        )
        assert expected.status_code == 200, expected.text
        shown = page.inner_text("[data-figure='preview.recipients']")
        assert shown == str(expected.json()["recipients"]) != "0", scope
        if scope["kind"] == "compounds":
            shot(town, page, "broadcasts", at="#broadcast-form")
    # Town-wide: it waits for a second operator's approval.
    page.select_option("#scope-kind", "town")
    page.click("#broadcast-form button[type=submit]")
    page.wait_for_selector("#broadcasts tbody tr")
    [waiting] = every(api, "/v1/broadcasts", status="awaiting_approval")
    assert waiting["town_wide"] and "awaiting approval" in page.inner_text("#broadcasts")
    go(page, town, "#/messages", "#message-states")
    shot(town, page, "messages")
    assert page.errors == []
    page.context.close()

    volunteer = signed_in(browser, town, "volunteer1")
    for hash_ in ("#/stock", "#/requests", "#/broadcasts", "#/messages"):
        go(volunteer, town, hash_, "#not-for-role")
    volunteer.context.close()


def _tasks_today(api: httpx.Client, compound_id: str) -> list[Any]:
    start = datetime.now(TOWN_ZONE).replace(hour=0, minute=0, second=0, microsecond=0)
    end = start + timedelta(days=1)
    tasks = every(api, "/v1/disinfection-tasks", compound_id=compound_id)
    return [x for x in tasks if start <= datetime.fromisoformat(x["slot_at"]) < end]


async def _card_due_earlier(town: Served, request_id: str, *, hours: int) -> None:
    """A card collected ``hours`` before its return time ran out."""
    logistics = town.platform.runtime("logistics")
    async with logistics.uow(Principal.system()) as uow:
        request = await uow.session.get(HelpRequest, uuid.UUID(request_id))
        assert request is not None and request.card_due_at is not None
        request.card_due_at = datetime.now(UTC) - timedelta(hours=hours)
        await uow.commit()


def test_errands_disinfection_and_stock_cards_from_the_console(browser: Any, town: Served) -> None:
    api = town.api("operator")
    town.caught_up()
    first = api.get("/v1/compounds").json()[0]
    town_id = api.get("/v1/auth/me").json()["scope"]["towns"][0]
    residents = api.get("/v1/residents", params={"compound_id": first["id"], "limit": 3}).json()
    patient, other, third = residents["items"]
    page = signed_in(browser, town, "operator")
    page.wait_for_selector("#dashboard")
    for label in ("Recurring", "Insurance cards", "Disinfection"):
        assert label in page.inner_text("#nav")

    # A dialysis patient's trips, Monday, Wednesday and Friday at 07:30: made, then stopped.
    go(page, town, "#/recurring", "#recurring-form")
    page.fill("#recurring-name", patient["name"])
    page.click("#recurring-find")
    page.wait_for_selector(f"#recurring-resident option[value='{patient['id']}']", state="attached")
    page.select_option("#recurring-resident", patient["id"])
    page.fill("#recurring-hospital", "Town People's Hospital, dialysis unit")
    page.click("#recurring-form button[type=submit]")
    page.wait_for_selector("#recurring tbody tr")
    [made] = every(api, "/v1/recurring-requests", resident_id=patient["id"])
    assert (made["kind"], made["reason"], made["weekdays"], made["at_time"], made["active"]) == (
        "medical_transport",
        "dialysis",
        ["mon", "wed", "fri"],
        "07:30",
        True,
    )
    shot(town, page, "recurring")
    page.click(f"[data-stop='{made['id']}']")
    page.wait_for_selector("#recurring tr:has-text('stopped')")
    assert [
        r["active"] for r in every(api, "/v1/recurring-requests", resident_id=patient["id"])
    ] == [False]

    # A medicine run: given to the volunteer the service suggests (or a team when none is),
    # its insurance card collected from the request's page.
    run = api.post(
        "/v1/requests",
        json={
            "resident_id": other["id"],
            "kind": "medicine_run",
            "details": "Blood pressure tablets, 30 days",
            "hospital": "Town People's Hospital",
        },
        headers={"Idempotency-Key": "console-run-1"},
    )
    assert run.status_code == 201, run.text
    run_id = run.json()["id"]
    suggested = api.get(f"/v1/requests/{run_id}/suggestions").json()
    go(page, town, f"#/request/{run_id}", "#assign-form")
    offered = page.eval_on_selector_all(
        "#assign-volunteer option", "os => os.map(o => o.value).filter(Boolean)"
    )
    assert offered == [s["id"] for s in suggested]
    assert page.input_value("#assign-volunteer") == (suggested[0]["id"] if suggested else "")
    if not suggested:
        page.fill("#assign-team", "Errands team")
    shot(town, page, "request")
    page.click("#assign-form button[type=submit]")
    page.wait_for_selector("#request-status:text('assigned')")
    assigned = api.get(f"/v1/requests/{run_id}").json()
    assert (assigned["assignee_id"], assigned["team"]) == (
        (suggested[0]["id"], None) if suggested else (None, "Errands team")
    )
    page.click("[data-custody=collected]")
    page.wait_for_selector("#card-status:has-text('collected')")
    assert api.get(f"/v1/requests/{run_id}").json()["card"]["status"] == "collected"

    # The cards out: this one, late once its return time has passed.
    town.run(_card_due_earlier(town, run_id, hours=1))
    go(page, town, "#/cards", "#cards")
    out = every(api, "/v1/cards")
    late = every(api, "/v1/cards", overdue="true")
    assert page.locator("#cards tbody tr").count() == len(out) > 0
    assert page.inner_text("[data-figure='cards.overdue']") == str(len(late)) == "1"
    shot(town, page, "cards")
    page.click("[data-custody=at_hospital]")
    page.wait_for_selector("[data-card=at_hospital]")
    assert api.get(f"/v1/requests/{run_id}").json()["card"]["status"] == "at_hospital"

    # A request cancelled with its reason.
    groceries = api.post(
        "/v1/requests",
        json={"resident_id": third["id"], "kind": "groceries", "details": "Rice and oil"},
        headers={"Idempotency-Key": "console-groceries-1"},
    )
    assert groceries.status_code == 201, groceries.text
    go(page, town, f"#/request/{groceries.json()['id']}", "#cancel-form")
    page.click("#cancel-form button[type=submit]")
    assert "reason" in page.inner_text("#cancel-form .error")
    page.fill("#cancel-reason", "The family's own delivery came")
    page.click("#cancel-form button[type=submit]")
    page.wait_for_selector("#request-status:text('cancelled')")
    cancelled = api.get(f"/v1/requests/{groceries.json()['id']}").json()
    assert (cancelled["status"], cancelled["cancel_reason"]) == (
        "cancelled",
        "The family's own delivery came",
    )

    # The dashboard's request counts honour the caller's scope as the lists do: committee
    # staff count their compounds' requests, a volunteer only the errands given to them.
    for username in ("committee1", "volunteer1"):
        caller = town.api(username)
        counted = {c["compound_id"]: c["open"] for c in caller.get("/v1/requests/counts").json()}
        listed: dict[str, int] = {}
        for status in ("open", "assigned", "in_progress"):
            for r in every(caller, "/v1/requests", status=status):
                listed[r["compound_id"]] = listed.get(r["compound_id"], 0) + 1
        assert counted == listed, username
    everywhere = api.get("/v1/requests/counts").json()
    assert sum(c["open"] for c in everywhere) > sum(counted.values())

    # Disinfection in the town's day, hourly: a lift's tasks; the slot past is missed, and
    # done late from the console.
    path = f"/v1/disinfection-defaults/{town_id}"
    defaults = {k: v for k, v in api.get(path).json().items() if k != "town_id"}
    set_ = {**defaults, "timezone": TOWN_TIME_ZONE, "first_slot_hour": 0, "last_slot_hour": 24}
    assert api.put(path, json=set_).status_code == 200
    building = api.get(
        "/v1/zones/population", params={"compound_id": first["id"], "by": "unit"}
    ).json()[0]["building_id"]
    schedule = api.post(
        "/v1/disinfection-schedules",
        json={
            "target": "lift",
            "compound_id": first["id"],
            "building_id": building,
            "label": "Lift A",
            "per_day": 24,
        },
        headers={"Idempotency-Key": "console-disinfection-1"},
    )
    assert schedule.status_code == 201, schedule.text
    logistics = town.platform.runtime("logistics")
    [job] = [j for j in logistics.spec.periodic if j.name == "disinfection-tasks"]
    town.run(logistics.tick(job))
    town.run(logistics.tick(job, now=datetime.now(UTC) + timedelta(hours=1, minutes=5)))
    go(page, town, f"#/disinfection?compound_id={first['id']}", "#disinfection-today")
    today = _tasks_today(api, first["id"])
    assert page.locator("#disinfection-today tbody tr").count() == len(today) > 0
    missed = api.get("/v1/disinfection-tasks/missed", params={"compound_id": first["id"]}).json()
    assert page.inner_text("[data-figure='disinfection.missed']") == str(
        sum(g["missed"] for g in missed)
    )
    # The hourly lift's slots that ended within the hour and five minutes: one, or two when
    # the test runs in the last five minutes of an hour.
    lifts = [x for g in missed for x in g["tasks"] if x["schedule_id"] == schedule.json()["id"]]
    assert 1 <= len(lifts) <= 2, lifts
    lift = lifts[0]
    shot(town, page, "disinfection")
    page.click(f"#disinfection-missed [data-complete='{lift['id']}']")
    page.wait_for_selector("#disinfection-missed tr:has-text('done by operator')")
    done = api.get(f"/v1/disinfection-tasks/{lift['id']}").json()
    assert (done["status"], done["done_by"]) == ("done", "operator")

    # The stock card of an item at a store: every ledger line, the balance after each.
    item = api.post(
        "/v1/items",
        json={"town_id": town_id, "name": "Millet", "unit": "kg", "perishable": False},
        headers={"Idempotency-Key": "console-item-millet"},
    )
    assert item.status_code == 201, item.text
    for n, quantity in enumerate(("40", "25.5")):
        received = api.post(
            "/v1/stock/receipts",
            json={
                "holder_id": first["id"],
                "source": "donation",
                "donor": "Grain Co.",
                "lines": [{"item_id": item.json()["id"], "quantity": quantity, "batch": f"R-{n}"}],
            },
            headers={"Idempotency-Key": f"console-millet-{n}"},
        )
        assert received.status_code == 201, received.text
    go(page, town, f"#/stock?holder_id={first['id']}", "#balances")
    page.click(f"#balances [data-card='{item.json()['id']}']")
    page.wait_for_selector("main[data-shown=stock-card] #stock-card")
    entries = every(api, "/v1/stock/entries", holder_id=first["id"], item_id=item.json()["id"])
    [balance] = api.get(
        "/v1/stock/balances", params={"holder_id": first["id"], "item_id": item.json()["id"]}
    ).json()
    assert page.locator("#stock-card tbody tr").count() == len(entries) == 2
    assert float(page.inner_text("[data-figure=on_hand]")) == float(balance["on_hand"])
    after = page.eval_on_selector_all(
        "#stock-card td[data-col=after]", "c => c.map(x => x.textContent)"
    )
    assert [float(a) for a in after] == [40, 65.5] and float(balance["on_hand"]) == 65.5
    shot(town, page, "stock-card")
    assert page.errors == []
    page.context.close()


def test_a_page_still_loading_when_another_is_opened_does_not_cover_it(
    browser: Any, town: Served
) -> None:
    page = signed_in(browser, town, "operator")
    go(page, town, "#/rounds", "#schedule-form")
    # The dashboard's figures come late (a loaded server at night) ...
    held: list[Any] = []
    page.route("**/v1/zones/population*", lambda route: held.append(route))
    page.goto(f"{town.base}/console/#/dashboard")
    # (Playwright hands over requests while it waits: wait a little between looks.)
    eventually(
        lambda: page.wait_for_timeout(100) or held, what="the dashboard asking for its figures"
    )
    # ... and the operator moves on before they arrive.
    go(page, town, "#/rounds", "#schedule-form")
    for route in held:
        route.continue_()
    page.wait_for_timeout(3000)
    assert page.locator("#schedule-form").is_visible()
    assert page.locator("#dashboard").count() == 0
    assert page.errors == []

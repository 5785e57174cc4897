"""Building blocks for the notify tests: residents with a language and an opt-out, and
waiting for the notify service's directory to hold them."""

from typing import Any

import httpx
from sqlalchemy import func, select

from cordon.platform import Platform
from services.notify.models import DirectoryResident, Message
from shared.auth import Principal
from tests.support import Compound, eventually, id_number, post


async def resident(
    client: httpx.AsyncClient,
    compound: Compound,
    headers: Any,
    *,
    name: str,
    unit: int = 0,
    household: str | None = None,
    phone: str | None = "13812345678",
    language: str = "zh-CN",
    opted_out: bool = False,
    tags: list[str] | None = None,
) -> dict[str, Any]:
    """A resident of the compound's building, in a household of their own by default."""
    code = household or f"{unit + 1}0{name}"
    households = await client.get(
        f"/v1/households?building_id={compound.building_id}", headers=headers
    )
    existing = [h for h in households.json()["items"] if h["code"] == code]
    if existing:
        household_id = existing[0]["id"]
    else:
        body = {
            "building_id": compound.building_id,
            "unit_id": compound.unit_ids[unit],
            "code": code,
        }
        household_id = (await post(client, "/v1/households", body, headers))["id"]
    body = {
        "household_id": household_id,
        "name": name,
        "document_number": id_number(),
        "phone": phone,
        "language": language,
        "opted_out": opted_out,
        "tags": tags or [],
    }
    return dict(await post(client, "/v1/residents?reveal=true", body, headers))


async def notify_knows(platform: Platform, count: int) -> None:
    """Wait until the notify service's directory holds this many residents."""
    runtime = platform.runtime("notify")

    async def arrived() -> bool:
        async with runtime.uow(Principal.system()) as uow:
            query = select(func.count()).select_from(DirectoryResident)
            return int(await uow.session.scalar(query) or 0) >= count

    await eventually(arrived, what=f"{count} residents in the notify directory")


async def messages(platform: Platform, **where: Any) -> list[Message]:
    """The notify service's messages (all of them, or those matching ``where``)."""
    runtime = platform.runtime("notify")
    async with runtime.uow(Principal.system()) as uow:
        query = select(Message).filter_by(**where).order_by(Message.created_at)
        found = list(await uow.session.scalars(query))
        uow.session.expunge_all()
        return found

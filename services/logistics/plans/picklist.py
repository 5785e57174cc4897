"""Pick lists for building leaders: per building and unit, what each household receives
and whether it goes to the door; as CSV or .xlsx (through ``shared.spreadsheets``) or a
printable page, one page per building."""

import html
import io
import itertools
from collections.abc import AsyncIterator, Sequence
from typing import Any

from services.logistics.models import AllocationStatus, DistributionPlan
from services.logistics.plans.cancelled import cancellation
from shared.spreadsheets import Cell, SheetFormat, write_sheet

COLUMNS = (
    "building",
    "unit",
    "household",
    "room",
    "people",
    "item",
    "quantity",
    "delivery",
    "status",
)


def item_labels(plan: DistributionPlan) -> dict[str, str]:
    return {str(line["item_id"]): line.get("label") or str(line["item_id"]) for line in plan.lines}


def delivery(row: Any) -> str:
    """How the household receives it: at the door (and why) or collected as usual."""
    return f"door ({row.door_reason})" if row.door_delivery else "collect"


def cells(row: Any, labels: dict[str, str]) -> list[Cell]:
    return [
        row.building_code or "",
        row.unit_code or "",
        row.household_code or str(row.household_id),
        row.room or "",
        row.household_size,
        labels.get(str(row.item_id), str(row.item_id)),
        row.quantity,
        delivery(row),
        row.status,
    ]


async def sheet(plan: DistributionPlan, rows: Sequence[Any], *, sheet_format: SheetFormat) -> bytes:
    labels = item_labels(plan)

    async def lines() -> AsyncIterator[list[Cell]]:
        for row in rows:
            yield cells(row, labels)

    out = io.BytesIO()
    await write_sheet(
        out, sheet_format=sheet_format, title="Pick list", columns=COLUMNS, rows=lines()
    )
    return out.getvalue()


PAGE_STYLE = """
body { font-family: sans-serif; font-size: 11pt; }
section { page-break-after: always; }
section:last-child { page-break-after: auto; }
table { border-collapse: collapse; width: 100%; margin-bottom: 1em; }
th, td { border: 1px solid #444; padding: 2px 6px; text-align: left; }
tr.door td { font-weight: bold; }
tr.cancelled td { text-decoration: line-through; }
tr.delivered td { color: #666; }
p.cancelled { font-size: 14pt; font-weight: bold; border: 2px solid #000; padding: 4px; }
td.tick { width: 3em; }
"""


def page(plan: DistributionPlan, rows: Sequence[Any]) -> str:
    """One printed page per building, a table per unit; door deliveries in bold. Each row
    says where the household stands (delivered, not delivered and why, pending), so a list
    reprinted halfway sends nobody to a door twice. A cancelled plan says so on every page,
    and its households not delivered are struck through."""
    labels = item_labels(plan)
    title = html.escape(plan.name)
    said = cancellation(plan)
    notice = (
        ""
        if said is None
        else f'<p class="cancelled">Cancelled: {html.escape(said)}. '
        "Deliver nothing on this list.</p>"
    )
    sections = []
    for (_, code), in_building in itertools.groupby(
        rows, key=lambda r: (r.building_id, r.building_code)
    ):
        units = []
        for unit_code, in_unit in itertools.groupby(in_building, key=lambda r: r.unit_code):
            body = "".join(_row(row, labels) for row in in_unit)
            units.append(
                f"<h3>Unit {html.escape(unit_code or '-')}</h3><table><tr><th>household</th>"
                "<th>room</th><th>people</th><th>item</th><th>quantity</th><th>delivery</th>"
                f"<th>status</th><th>signed</th></tr>{body}</table>"
            )
        sections.append(
            f"<section><h2>{title} — building {html.escape(code or '-')}</h2>"
            f"{notice}{''.join(units)}</section>"
        )
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{PAGE_STYLE}</style></head><body>{''.join(sections)}</body></html>"
    )


def _status(row: Any) -> str:
    """Where the household stands: ``not delivered (absent)`` for a failed try."""
    if row.status == AllocationStatus.undelivered.value:
        return f"not delivered ({row.reason})" if row.reason else "not delivered"
    return str(row.status)


def _row(row: Any, labels: dict[str, str]) -> str:
    values = cells(row, labels)
    shown = [values[2], values[3], values[4], values[5], values[6], values[7], _status(row)]
    if row.status == AllocationStatus.cancelled.value:
        css = ' class="cancelled"'
    elif row.status == AllocationStatus.delivered.value:
        css = ' class="delivered"'
    else:
        css = ' class="door"' if row.door_delivery else ""
    tds = "".join(f"<td>{html.escape(str(v))}</td>" for v in shown)
    return f'<tr{css}>{tds}<td class="tick"></td></tr>'

"""Quantities: decimals with at most three places at the API (2.5 kg, 1 box), integer
thousandths in the database (exact sums on both backends), and a sentence for people
("12 kg of rice at compound C03")."""

import re
from decimal import Decimal
from typing import Annotated

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema

from services.logistics.models import MILLI, Holder, Item
from shared.problems import Invalid


def _text(sign: str) -> str:
    return rf"{sign}[0-9]{{1,12}}(\.[0-9]{{1,3}})?"


def _accepted(*, sign: str, minimum: dict[str, int]) -> WithJsonSchema:
    """A number, or its decimal text (exact: "0.1" is not 0.1000000000000000055)."""
    pattern = f"^{_text(sign)}$"
    return WithJsonSchema(
        {"anyOf": [{"type": "number", **minimum}, {"type": "string", "pattern": pattern}]}
    )


def _plain(sign: str) -> BeforeValidator:
    """Text held to the documented pattern: Decimal would also read "1e9" (a receipt of a
    billion kg from a typo), " 5" or "+5"."""
    form = re.compile(_text(sign))

    def check(value: object) -> object:
        if isinstance(value, str) and not form.fullmatch(value):
            raise ValueError("write digits with at most three decimals, such as 2.5")
        return value

    return BeforeValidator(check)


# What a request states: positive, at most three decimals (a gram of a kilogram).
Quantity = Annotated[
    Decimal,
    Field(gt=0, max_digits=15, decimal_places=3),
    _plain(""),
    _accepted(sign="", minimum={"exclusiveMinimum": 0}),
    PlainSerializer(float, return_type=float, when_used="json"),
]
# What a count found: nothing, or more.
Counted = Annotated[
    Decimal,
    Field(ge=0, max_digits=15, decimal_places=3),
    _plain(""),
    _accepted(sign="", minimum={"minimum": 0}),
    PlainSerializer(float, return_type=float, when_used="json"),
]
# A change that may go either way (an adjustment).
Change = Annotated[
    Decimal,
    Field(max_digits=15, decimal_places=3),
    _plain("-?"),
    _accepted(sign="-?", minimum={}),
    PlainSerializer(float, return_type=float, when_used="json"),
]
# What an answer states.
Amount = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]


def _from_stored(value: object) -> object:
    return of_milli(value) if isinstance(value, int) else value


# An answer read from a stored row (thousandths), e.g. a stock card line.
Stored = Annotated[
    Decimal,
    BeforeValidator(_from_stored),
    PlainSerializer(float, return_type=float, when_used="json"),
]
PLURAL = {"portion": "portions", "box": "boxes", "piece": "pieces"}


def to_milli(value: Decimal | int, *, field: str = "quantity", item: Item | None = None) -> int:
    """Thousandths of the unit; a finer quantity is refused rather than rounded, and so is
    a fraction of a unit ``item`` counts whole (:func:`whole`)."""
    scaled = Decimal(value) * MILLI
    if scaled != scaled.to_integral_value():
        raise Invalid.on(field, f"{value} has more than three decimals")
    return int(scaled) if item is None else whole(int(scaled), item, field=field)


# Units counted whole: half a tin or half a portion is nothing anybody can hand out.
WHOLE_UNITS = frozenset({"portion", "box", "piece"})


def whole(value: int, item: Item, *, field: str) -> int:
    """``value`` (thousandths) as it is, when it is a quantity of ``item`` that can be: a
    portion, a box or a piece is counted whole (422 naming ``field`` otherwise); kilograms
    and jin keep their decimals."""
    if item.unit in WHOLE_UNITS and value % MILLI:
        raise Invalid.on(
            field,
            f"{of_milli(value)} {PLURAL.get(item.unit, item.unit)} of {item.name}: a "
            f"{item.unit} is counted whole, give a whole number",
        )
    return value


def of_milli(value: int) -> Decimal:
    """The decimal a number of thousandths stands for, without trailing zeros."""
    result = (Decimal(value) / MILLI).normalize()
    # normalize() writes 100 as 1E+2: keep integers plain.
    return result.quantize(Decimal(1)) if result == result.to_integral_value() else result


def amount(value: int, item: Item) -> str:
    """``12 kg of rice``, ``3 boxes of infant formula``."""
    shown = of_milli(value)
    unit = item.unit if shown == 1 else PLURAL.get(item.unit, item.unit)
    return f"{shown} {unit} of {item.name}"


def where(holder: Holder) -> str:
    if holder.kind == "warehouse":
        return "the town warehouse"
    return f"compound {holder.code}"

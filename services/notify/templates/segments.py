"""How many SMS segments a text costs, as the provider bills it.

A text that fits the GSM-7 alphabet is sent in 7-bit septets: 160 in one segment, 153 per
part of a long one (the user-data header takes 7). Characters of the extension table
(``^{}\\[~]|€`` and form feed) are an escape and a septet: they count two, and a part
never splits that pair. Anything else (Chinese, most emoji) makes the whole text UCS-2:
70 UTF-16 units in one segment, 67 per part, a surrogate pair (an emoji) counting two and
never split. The provider's signature (``【某某街道】``) is sent with every text, so it is
counted with it: with a Chinese signature even an English text is UCS-2.
"""

from dataclasses import dataclass
from typing import Literal

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")
GSM7 = GSM7_BASIC | GSM7_EXTENDED
SINGLE = {"gsm7": 160, "ucs2": 70}
PART = {"gsm7": 153, "ucs2": 67}

Encoding = Literal["gsm7", "ucs2"]


@dataclass(frozen=True)
class Segments:
    """What a text costs: its encoding, its length in the encoding's units (septets or
    UTF-16 units), and the segments it is billed as."""

    encoding: Encoding
    units: int
    segments: int


def _units(character: str, encoding: Encoding) -> int:
    if encoding == "gsm7":
        return 2 if character in GSM7_EXTENDED else 1
    return 2 if ord(character) > 0xFFFF else 1


def encoding_of(text: str) -> Encoding:
    return "gsm7" if all(c in GSM7 for c in text) else "ucs2"


def count_segments(text: str, *, signature: str = "") -> Segments:
    """The encoding, length and segment count of ``text`` sent with ``signature``."""
    full = signature + text
    encoding = encoding_of(full)
    sizes = [_units(c, encoding) for c in full]
    units = sum(sizes)
    if units == 0:
        return Segments(encoding, 0, 0)
    if units <= SINGLE[encoding]:
        return Segments(encoding, units, 1)
    # A long text is cut greedily; a character's units (an escape pair, a surrogate pair)
    # stay in one part, so a part may hold one unit less than its room.
    parts, room = 1, PART[encoding]
    for size in sizes:
        if size > room:
            parts, room = parts + 1, PART[encoding]
        room -= size
    return Segments(encoding, units, parts)

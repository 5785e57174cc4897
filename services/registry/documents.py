"""Identity documents of residents, and phone numbers in requests (normalised by
:mod:`shared.phones`).

Mainland resident ID numbers (GB 11643-1999) carry the birth date, the sex and an
ISO 7064 MOD 11-2 check character; validation here is pure and fast enough to run on
every row of a million-row ledger.
"""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Annotated, NamedTuple, NoReturn

from pydantic import AfterValidator

from shared.fields import FreeText
from shared.phones import InvalidPhone as InvalidPhone
from shared.phones import normalize_phone as normalize_phone


class InvalidDocument(ValueError):
    """An identity document number that cannot be accepted; the message says why."""


class DocumentType(StrEnum):
    ID_CARD = "id_card"
    PASSPORT = "passport"
    OTHER = "other"


class Sex(StrEnum):
    MALE = "male"
    FEMALE = "female"


class IdCard(NamedTuple):
    number: str
    birth_date: date
    sex: Sex


_MALE = Sex.MALE
_FEMALE = Sex.FEMALE
_CHECK_CHARS = "10X98765432"
_MIN_BIRTH_YEAR = 1900
_PASSPORT = re.compile(r"[A-Z0-9]{5,20}")
_OTHER_MAX = 40
# Only valid dates are cached, so the cache holds at most one entry per day since 1900.
_birth_dates: dict[str, date] = {}


def id_check_char(first17: str) -> str:
    """The MOD 11-2 check character of 17 ASCII digits.

    The weights 7, 9, 10, 5, ... are 2**k mod 11, and 13 is 2 mod 11, so reading the
    digits in base 13 yields the weighted sum mod 11 in one C call.
    """
    return _CHECK_CHARS[(int(first17, 13) * 2) % 11]


def parse_id_card(value: str, *, today: date | None = None) -> IdCard:
    """Validate a mainland resident ID number and return it with what it encodes."""
    number = value.strip()
    first17 = number[:17]
    if len(number) != 18 or not (first17.isdigit() and number.isascii()):
        _raise_malformed(number)
    expected = _CHECK_CHARS[(int(first17, 13) * 2) % 11]
    last = number[17]
    if last != expected:
        if last == "x" and expected == "X":
            number = first17 + "X"
        elif last in "0123456789X":
            raise InvalidDocument(f"ID number check digit is wrong (expected {expected})")
        else:
            _raise_malformed(number)
    digits = number[6:14]
    birth = _birth_dates.get(digits) or _birth_date(digits)
    if birth > (today or date.today()):
        raise InvalidDocument("ID number holds a birth date in the future")
    # tuple.__new__ skips IdCard's Python-level __new__: this runs once per ledger row.
    return tuple.__new__(IdCard, (number, birth, _MALE if number[16] in "13579" else _FEMALE))


def _raise_malformed(number: str) -> NoReturn:
    if len(number) != 18:
        raise InvalidDocument("ID number must have 18 characters")
    raise InvalidDocument("ID number must be 17 digits followed by a digit or X")


def _birth_date(digits: str) -> date:
    try:
        birth = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        raise InvalidDocument("ID number holds no valid birth date") from None
    if birth.year < _MIN_BIRTH_YEAR:
        raise InvalidDocument("ID number holds no valid birth date")
    _birth_dates[digits] = birth
    return birth


def validate_id_card(value: str) -> str:
    """Return the normalised ID number (trimmed, upper-case X) or raise InvalidDocument."""
    return parse_id_card(value).number


def id_card_birth_date(value: str) -> date:
    return parse_id_card(value).birth_date


def id_card_sex(value: str) -> Sex:
    return parse_id_card(value).sex


def validate_document(*, document_type: DocumentType, number: str) -> str:
    """Return the normalised document number or raise InvalidDocument."""
    if document_type is DocumentType.ID_CARD:
        return validate_id_card(number)
    if document_type is DocumentType.PASSPORT:
        passport = number.strip().upper()
        if not _PASSPORT.fullmatch(passport):
            raise InvalidDocument("passport number must be 5 to 20 letters or digits")
        return passport
    other = number.strip()
    if not other or len(other) > _OTHER_MAX or not other.isprintable():
        raise InvalidDocument(f"document number must be 1 to {_OTHER_MAX} printable characters")
    return other


def _optional_phone(value: str | None) -> str | None:
    return normalize_phone(value) if value else None


# A phone number in a request: normalised to E.164, an empty one taken as none.
Phone = Annotated[FreeText | None, AfterValidator(_optional_phone)]


def make_id_card(*, region: str, birth: date, sequence: int, sex: Sex) -> str:
    """Build a valid ID number; `sequence` (0-499) numbers people of one region, day and sex.

    The three-digit order code is 2 * sequence, plus one for a man, since its last digit
    encodes the sex.
    """
    if len(region) != 6 or not (region.isascii() and region.isdigit()):
        raise ValueError("region must be 6 digits")
    if birth.year < _MIN_BIRTH_YEAR:
        raise ValueError("birth year must be 1900 or later")
    if not 0 <= sequence <= 499:
        raise ValueError("sequence must be between 0 and 499")
    order = sequence * 2 + (1 if sex is Sex.MALE else 0)
    first17 = f"{region}{birth:%Y%m%d}{order:03d}"
    return first17 + id_check_char(first17)

"""Phone numbers, kept in E.164 form everywhere (residents, contacts, notification targets)."""

import functools
import re
import unicodedata

import phonenumbers


class InvalidPhone(ValueError):
    """A phone number that cannot be accepted; the message says why."""


# Mainland mobiles are most of a ledger; this keeps phonenumbers off the hot path.
_MAINLAND_MOBILE = re.compile(r"(?:(?:\+|00)?86[ -]*)?(1[3-9][0-9])[ -]*([0-9]{4})[ -]*([0-9]{4})")
_MOBILE_PREFIXES = frozenset(f"1{digit}" for digit in range(3, 10))
# What a written number may hold besides its digits. phonenumbers alone would read keypad
# letters as digits ("1381234abcd") and drop text around a number ("abc13812345678").
_PHONE_CHARACTERS = re.compile(r"\+?[0-9 ()./-]+", re.ASCII)


def normalize_phone(value: str) -> str:
    """Return the number in E.164 form, reading it as a mainland China number by default."""
    text = value.strip()
    if len(text) == 11 and text[:2] in _MOBILE_PREFIXES and text.isascii() and text.isdigit():
        return "+86" + text
    match = _MAINLAND_MOBILE.fullmatch(text)
    if match is not None:
        return "+86" + "".join(match.groups())
    # Full-width digits and signs, as Chinese input methods type them, are the ASCII ones.
    if not _PHONE_CHARACTERS.fullmatch(unicodedata.normalize("NFKC", text)):
        raise InvalidPhone(
            f"phone number {text!r} is not a valid number: only digits, spaces and + - ( ) . /"
        )
    try:
        parsed = phonenumbers.parse(text, "CN")
    except phonenumbers.NumberParseException:
        raise InvalidPhone(f"phone number {text!r} is not a valid number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhone(f"phone number {text!r} is not a valid number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


# An E.164 mainland mobile: most of every directory, checked without phonenumbers.
_E164_MAINLAND_MOBILE = re.compile(r"\+861[3-9][0-9]{9}")
_MOBILE_TYPES = frozenset(
    {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}
)


@functools.lru_cache(maxsize=4096)
def _other_mobile(phone: str) -> bool:
    try:
        parsed = phonenumbers.parse(phone, "CN")
    except phonenumbers.NumberParseException:
        return False
    return (
        phonenumbers.is_valid_number(parsed) and phonenumbers.number_type(parsed) in _MOBILE_TYPES
    )


def can_receive_sms(phone: str | None) -> bool:
    """Whether a stored number is a mobile an SMS can reach (a landline or nothing cannot)."""
    if not phone:
        return False
    if phone.startswith("+86"):
        return _E164_MAINLAND_MOBILE.fullmatch(phone) is not None
    return _other_mobile(phone)

from datetime import date

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.registry.documents import (
    DocumentType,
    InvalidDocument,
    InvalidPhone,
    Sex,
    id_card_birth_date,
    id_card_sex,
    id_check_char,
    make_id_card,
    normalize_phone,
    parse_id_card,
    validate_document,
    validate_id_card,
)

# The sample number printed in GB 11643-1999.
SAMPLE_ID = "11010519491231002X"

regions = st.from_regex(r"[1-8][0-9]{5}", fullmatch=True)
births = st.dates(min_value=date(1900, 1, 1), max_value=date.today())
sequences = st.integers(min_value=0, max_value=499)
sexes = st.sampled_from(Sex)


def test_the_standard_sample_number_is_valid_and_keeps_its_x() -> None:
    assert validate_id_card(SAMPLE_ID) == SAMPLE_ID


def test_a_lowercase_x_and_surrounding_spaces_are_normalised() -> None:
    assert validate_id_card("  11010519491231002x ") == SAMPLE_ID


def test_a_wrong_check_digit_names_the_expected_one() -> None:
    with pytest.raises(InvalidDocument, match=r"check digit is wrong \(expected X\)"):
        validate_id_card("110105194912310021")


def test_a_number_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(InvalidDocument, match="must have 18 characters"):
        validate_id_card("11010519491231002")


@pytest.mark.parametrize(
    "number", ["11010519491231002A", "1101051949123100X2", "１１0105194912310029"]
)
def test_letters_and_non_ascii_digits_are_refused(number: str) -> None:
    with pytest.raises(InvalidDocument, match="17 digits followed by a digit or X"):
        validate_id_card(number)


@pytest.mark.parametrize("birth", ["19900230", "19901301", "18991231"])
def test_a_number_without_a_real_birth_date_is_refused(birth: str) -> None:
    first17 = f"110105{birth}002"
    with pytest.raises(InvalidDocument, match="no valid birth date"):
        validate_id_card(first17 + id_check_char(first17))


def test_a_birth_date_after_today_is_refused() -> None:
    number = make_id_card(region="110105", birth=date(2024, 5, 2), sequence=3, sex=Sex.MALE)
    with pytest.raises(InvalidDocument, match="future"):
        parse_id_card(number, today=date(2024, 5, 1))
    assert parse_id_card(number, today=date(2024, 5, 2)).birth_date == date(2024, 5, 2)


def test_birth_date_and_sex_are_read_from_the_number() -> None:
    assert id_card_birth_date(SAMPLE_ID) == date(1949, 12, 31)
    assert id_card_sex(SAMPLE_ID) is Sex.FEMALE
    assert id_card_sex("110105194912310011") is Sex.MALE


@given(region=regions, birth=births, sequence=sequences, sex=sexes)
def test_made_numbers_validate_and_encode_birth_and_sex(
    region: str, birth: date, sequence: int, sex: Sex
) -> None:
    number = make_id_card(region=region, birth=birth, sequence=sequence, sex=sex)
    card = parse_id_card(number)
    assert card.number == number
    assert card.birth_date == birth
    assert card.sex is sex
    assert number.startswith(region)


@given(
    region=regions,
    birth=births,
    sequence=sequences,
    sex=sexes,
    position=st.integers(min_value=0, max_value=16),
    shift=st.integers(min_value=1, max_value=9),
)
def test_changing_any_one_digit_breaks_the_check(
    region: str, birth: date, sequence: int, sex: Sex, position: int, shift: int
) -> None:
    number = make_id_card(region=region, birth=birth, sequence=sequence, sex=sex)
    digit = str((int(number[position]) + shift) % 10)
    typo = number[:position] + digit + number[position + 1 :]
    with pytest.raises(InvalidDocument, match="check digit is wrong"):
        validate_id_card(typo)


def test_distinct_sequences_give_distinct_numbers() -> None:
    birth = date(1988, 8, 8)
    numbers = {
        make_id_card(region="330782", birth=birth, sequence=sequence, sex=sex)
        for sequence in range(500)
        for sex in Sex
    }
    assert len(numbers) == 1000


def test_make_id_card_refuses_what_cannot_be_encoded() -> None:
    birth = date(1990, 1, 1)
    with pytest.raises(ValueError, match="region"):
        make_id_card(region="33078", birth=birth, sequence=0, sex=Sex.MALE)
    with pytest.raises(ValueError, match="sequence"):
        make_id_card(region="330782", birth=birth, sequence=500, sex=Sex.MALE)
    with pytest.raises(ValueError, match="1900"):
        make_id_card(region="330782", birth=date(1899, 12, 31), sequence=0, sex=Sex.MALE)


def test_passport_numbers_are_trimmed_and_upper_cased() -> None:
    number = validate_document(document_type=DocumentType.PASSPORT, number=" e12345678 ")
    assert number == "E12345678"


@pytest.mark.parametrize("number", ["E123", "E1234-5678", "A" * 21])
def test_malformed_passport_numbers_are_refused(number: str) -> None:
    with pytest.raises(InvalidDocument, match="passport"):
        validate_document(document_type=DocumentType.PASSPORT, number=number)


def test_other_documents_accept_printable_text_up_to_40_characters() -> None:
    number = validate_document(document_type=DocumentType.OTHER, number=" 港澳通行证 C1234 ")
    assert number == "港澳通行证 C1234"
    for bad in ["", "   ", "x" * 41, "AB\tCD"]:
        with pytest.raises(InvalidDocument):
            validate_document(document_type=DocumentType.OTHER, number=bad)


def test_validate_document_checks_id_cards_fully() -> None:
    assert validate_document(document_type=DocumentType.ID_CARD, number=SAMPLE_ID) == SAMPLE_ID
    with pytest.raises(InvalidDocument, match="check digit"):
        validate_document(document_type=DocumentType.ID_CARD, number="110105194912310021")


@pytest.mark.parametrize(
    "value",
    [
        "13812345678",
        " 138 1234 5678 ",
        "138-1234-5678",
        "+8613812345678",
        "+86 138 1234 5678",
        "86 13812345678",
        "0086-138-1234-5678",
    ],
)
def test_mainland_mobiles_take_the_fast_path(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("phonenumbers must not be called for a mainland mobile")

    monkeypatch.setattr(phonenumbers, "parse", fail)
    assert normalize_phone(value) == "+8613812345678"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("021-6321 5678", "+862163215678"),
        ("(010) 6552 9988", "+861065529988"),
        ("+1 650 253 0000", "+16502530000"),
        ("１３８１２３４５６７８", "+8613812345678"),
    ],
)
def test_landlines_foreign_and_full_width_numbers_go_through_phonenumbers(
    value: str, expected: str
) -> None:
    assert normalize_phone(value) == expected


@pytest.mark.parametrize("value", ["12345", "12812345678", "hello", "", "138123456789"])
def test_invalid_phone_numbers_are_refused_with_the_number_quoted(value: str) -> None:
    with pytest.raises(InvalidPhone, match=f"phone number '{value}' is not a valid number"):
        normalize_phone(value)


@pytest.mark.parametrize(
    "value", ["1381234abcd", "abc13812345678", "13812345678x", "tel:13812345678", "021-6321 5678#"]
)
def test_letters_and_stray_characters_are_refused_not_read_as_digits(value: str) -> None:
    # phonenumbers alone reads keypad letters as digits and drops text around a number.
    with pytest.raises(InvalidPhone, match="only digits"):
        normalize_phone(value)

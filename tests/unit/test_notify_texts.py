"""The words of a text: a value an event carries as a code (a help request's kind, a zone
level) reads in the message's language, never as the code's snake_case."""

import re
from datetime import UTC, date, datetime
from typing import Any, get_args
from zoneinfo import ZoneInfo

import pytest

from services.notify.rules.catalogue import BY_KEY as RULES
from services.notify.templates.catalogue import BY_KEY as TEMPLATES
from services.notify.templates.render import VARIABLE_TYPES, render
from services.notify.templates.schemas import VariableType
from shared.contracts.logistics import RequestKind
from shared.contracts.registry import ZoneLevelName

# Every variable of a built-in rule that carries an event's enum, with the values it can
# carry: a help request's kind, and a zone level (empty, "lifted", when a zone is lifted).
KINDS = get_args(RequestKind)
LEVELS = (*get_args(ZoneLevelName), "lifted")
ENUM_VARIABLES = {
    ("request_assigned", "request"): KINDS,
    ("request_done", "request"): KINDS,
    ("request_overdue", "request"): KINDS,
    ("zone_sealed", "level"): LEVELS,
    ("zone_changed", "level"): LEVELS,
}
# The other variables, as a Chinese text would name them.
SAMPLES: dict[str, Any] = {
    "str": "幸福里3号楼",
    "int": 12,
    "datetime": datetime(2022, 4, 1, 17, 30, tzinfo=UTC),
    "date": date(2022, 4, 2),
}
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _texts(rule_key: str, variable: str, value: str) -> dict[str, str]:
    rule = RULES[rule_key]
    template = TEMPLATES[rule.template_key]
    values = {name: SAMPLES.get(kind) for name, kind in template.variables.items()}
    values[variable] = value
    return {
        locale: render(
            text, variables=template.variables, values=values, locale=locale, zone=SHANGHAI
        )
        for locale, text in template.texts.items()
    }


@pytest.mark.parametrize(
    ("rule_key", "variable", "value"),
    [(rule, name, value) for (rule, name), values in ENUM_VARIABLES.items() for value in values],
)
def test_an_enum_value_reads_as_a_word_of_the_texts_language(
    rule_key: str, variable: str, value: str
) -> None:
    texts = _texts(rule_key, variable, value)
    # A Chinese text says it in Chinese: no Latin letters at all (the samples are Chinese).
    assert not re.search(r"[A-Za-z]", texts["zh-CN"]), texts["zh-CN"]
    # An English one in words: no snake_case token.
    assert not re.search(r"\w_\w", texts["en"]), texts["en"]


def test_a_template_may_declare_every_glossary_type() -> None:
    assert set(get_args(VariableType)) == set(VARIABLE_TYPES)

"""The event catalogue (docs/events.md), generated from the contracts so it never drifts."""

from typing import Any

import shared.contracts  # noqa: F401  (fills the catalogue)
from shared.events import CATALOGUE, Envelope, Event

HEADER = """# Event catalogue

Generated from the contracts in `shared/contracts/` by `cordon events-doc`; a test fails when
this file is stale. Every event travels in the same envelope; its `type` is also the routing
key on the topic exchange `cordon`.

- `position` is the event's place in its producer's stream (stamped by the relay from the
  outbox sequence). It only grows, and for any one entity it grows in commit order:
  projections apply a record only when its event's position is newer than what they hold,
  and drop the rest (delivery order means nothing; see docs/architecture.md).
- Producers are strict, consumers tolerant: a producer cannot build an event with a field
  its contract lacks, and a consumer ignores fields it does not know yet. Add fields as
  optional (with a default); removing or changing one needs a new `version`.
- Times (date-time) are in UTC (`Z`): a producer's time with another offset is converted
  when the event is built, and one without an offset is refused there; a consumer reads a
  time without an offset as UTC, never as its own process's local time.

"""


def render() -> str:
    parts = [HEADER, "## Envelope\n\n", _fields(Envelope.model_json_schema()), "\n"]
    for event_type in sorted(CATALOGUE):
        parts.append(_section(CATALOGUE[event_type]))
    return "".join(parts)


def _section(contract: type[Event]) -> str:
    doc = " ".join((contract.__doc__ or "").split())
    flags = f"version {contract.version}"
    if contract.personal_data:
        flags += " · carries personal data"
    schema = contract.model_json_schema()
    return f"## `{contract.type}`\n\n{doc}\n\n*{flags}*\n\n{_fields(schema)}\n"


def _fields(schema: dict[str, Any]) -> str:
    required = set(schema.get("required", ()))
    definitions = schema.get("$defs", {})
    lines = ["| field | type | required |", "|---|---|---|"]
    for name, spec in schema.get("properties", {}).items():
        lines.append(f"| `{name}` | {_type(spec)} | {'yes' if name in required else 'no'} |")
    text = "\n".join(lines) + "\n"
    for def_name, definition in sorted(definitions.items()):
        if "properties" in definition:
            text += f"\n`{def_name}`:\n\n" + _fields({**definition, "$defs": {}})
    return text


def _type(spec: dict[str, Any]) -> str:
    if "$ref" in spec:
        return f"`{spec['$ref'].rsplit('/', 1)[-1]}`"
    if "anyOf" in spec:
        return " or ".join(_type(s) for s in spec["anyOf"])
    if "enum" in spec:
        return " / ".join(f"`{v}`" for v in spec["enum"])
    if "const" in spec:
        return f"`{spec['const']}`"
    if spec.get("type") == "array":
        return f"list of {_type(spec.get('items', {}))}"
    kind = spec.get("type", "any")
    return f"{kind} ({spec['format']})" if "format" in spec else str(kind)

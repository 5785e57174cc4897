"""Events are the contract: named by the rule, documented, and the catalogue is fresh."""

import re
from pathlib import Path

from cordon import catalogue
from shared.events import CATALOGUE, Envelope

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {"registry", "testing", "logistics", "notify"}


def test_docs_events_md_is_generated_from_the_contracts() -> None:
    current = (ROOT / "docs" / "events.md").read_text()
    assert current == catalogue.render(), "docs/events.md is stale: run `cordon events-doc`"


def test_every_event_type_is_service_entity_verb_with_a_description() -> None:
    assert CATALOGUE
    for event_type, contract in CATALOGUE.items():
        service, _, _ = event_type.split(".")
        assert re.fullmatch(r"[a-z]+\.[a-z_]+\.[a-z_]+", event_type), event_type
        assert service in SERVICES
        assert contract.__doc__, f"{event_type} needs a docstring for the catalogue"


def test_an_envelope_round_trips_and_parses_to_its_contract() -> None:
    from shared.contracts.registry import SnapshotStarted
    from shared.ids import new_id

    event = SnapshotStarted(resync_id=new_id(), town_ids=[new_id()])
    envelope = Envelope.wrap(event, producer="registry", correlation_id="c-1")
    again = Envelope.from_bytes(envelope.to_bytes())
    assert again == envelope
    assert again.event() == event
    assert again.type == "registry.snapshot.started"


def test_the_outbox_json_of_an_event_is_its_wrapped_envelope() -> None:
    from datetime import date

    from shared.contracts.registry import ResidentRecord, ResidentsImported
    from shared.ids import new_id

    record = ResidentRecord(
        id=new_id(),
        household_id=new_id(),
        town_id=new_id(),
        compound_id=new_id(),
        building_id=new_id(),
        unit_id=None,
        name="王秀英",
        document_number="110101194102030021",
        phone=None,
        birth_date=date(1941, 2, 3),
        tags=["elderly", "living_alone"],
    )
    event = ResidentsImported(import_id=new_id(), batch=1, residents=[record])
    compound = record.compound_id
    event_id, body = Envelope.json_of(
        event, producer="registry", correlation_id="c-1", compound_id=compound
    )
    parsed = Envelope.from_bytes(body)
    wrapped = Envelope.wrap(event, producer="registry", correlation_id="c-1", compound_id=compound)
    assert parsed.id == event_id
    assert parsed.model_dump(exclude={"id", "occurred_at"}) == wrapped.model_dump(
        exclude={"id", "occurred_at"}
    )
    assert parsed.event() == event


def test_the_relay_stamps_the_position_on_the_outbox_json() -> None:
    from shared.contracts.registry import SnapshotStarted
    from shared.events import stamp_position
    from shared.ids import new_id

    event = SnapshotStarted(resync_id=new_id(), town_ids=[])
    event_id, body = Envelope.json_of(event, producer="registry", correlation_id="c-1")
    assert Envelope.from_bytes(body).position is None
    stamped = Envelope.from_bytes(stamp_position(body, 42))
    assert (stamped.id, stamped.position, stamped.event()) == (event_id, 42, event)

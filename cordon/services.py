"""The services this deployment runs, in start order."""

from services.logistics.app import SPEC as LOGISTICS
from services.notify.app import SPEC as NOTIFY
from services.registry.app import SPEC as REGISTRY
from services.testing.app import SPEC as TESTING
from shared.service import ServiceSpec

ALL: tuple[ServiceSpec, ...] = (REGISTRY, TESTING, LOGISTICS, NOTIFY)


def named(names: list[str] | None) -> tuple[ServiceSpec, ...]:
    if not names:
        return ALL
    known = {spec.name: spec for spec in ALL}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown service(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return tuple(known[n] for n in names)

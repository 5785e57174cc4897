"""The registry as the kernel sees it."""

from pathlib import Path

from services.registry.auth.endpoints import router as auth_router
from services.registry.auth.sessions import republish as republish_sessions
from services.registry.ledger.endpoints import router as ledger_router
from services.registry.models import SERVICE, Base, kernel
from services.registry.people.endpoints import router as people_router
from services.registry.places.endpoints import router as places_router
from services.registry.residents.endpoints import router as residents_router
from services.registry.resync import publish_snapshot
from services.registry.resync import router as resync_router
from services.registry.zones.endpoints import router as zones_router
from services.registry.zones.policy import on_testing_event, propose_downgrades
from shared.service import Consumer, Periodic, ServiceSpec

SPEC = ServiceSpec(
    name=SERVICE,
    metadata=Base.metadata,
    kernel=kernel,
    migrations=Path(__file__).parent / "migrations",
    routers=(
        auth_router,
        places_router,
        residents_router,
        people_router,
        zones_router,
        ledger_router,
        resync_router,
    ),
    resources=(
        "auth",
        "towns",
        "committees",
        "compounds",
        "buildings",
        "units",
        "grids",
        "households",
        "residents",
        "staff",
        "volunteers",
        "teams",
        "assignments",
        "users",
        "zones",
        "imports",
        "exports",
        "registry",
    ),
    consumers=(
        # Events may arrive in any order (retries, replays, several relays): the policy
        # compares a case's and an eligibility's times, never their arrival.
        Consumer(
            "zone-policy",
            ("testing.case.confirmed", "testing.compound.epidemic_free_eligible"),
            on_testing_event,
        ),
    ),
    resync=publish_snapshot,
    periodic=(
        Periodic("zone-downgrades", every_seconds=300, run=propose_downgrades),
        # Revocations written again for a key-value store that lost or missed them.
        Periodic("sessions", every_seconds=10, run=republish_sessions),
    ),
)

"""A town's testing policy: quarantine of contacts, the transfer target, the run of days to
epidemic-free. One row per town once an operator sets it; the model's defaults until then."""

import uuid

from services.testing.models import Policy
from services.testing.policies.schemas import PolicyIn
from shared.authz import Place, Role, policy
from shared.db import table_of
from shared.problems import NotFound
from shared.uow import UnitOfWork

# The town office sets its town's testing policy.
SET = policy("testing policy", "set", Role.town_operator, Role.service)


def default_policy(town_id: uuid.UUID) -> Policy:
    """The defaults of the policies table, as an unsaved row."""
    defaults = {
        column.key: column.default.arg  # type: ignore[attr-defined]
        for column in table_of(Policy).columns
        if column.default is not None
    }
    return Policy(id=town_id, town_id=town_id, **defaults)


async def policy_for(uow: UnitOfWork, town_id: uuid.UUID) -> Policy:
    """The town's policy (visible to anyone in the town's scope), or its defaults."""
    found = await uow.session.get(Policy, town_id)
    return found if found is not None else default_policy(town_id)


async def read_policy(uow: UnitOfWork, *, town_id: uuid.UUID) -> Policy:
    if not uow.scope.allows(town_id=town_id):
        raise NotFound(f"no town {town_id} in your scope")
    return await policy_for(uow, town_id)


async def set_policy(uow: UnitOfWork, *, town_id: uuid.UUID, data: PolicyIn) -> Policy:
    policy = await read_policy(uow, town_id=town_id)
    SET.check(uow, Place(town_id))
    for field, value in data.model_dump().items():
        setattr(policy, field, value)
    uow.session.add(policy)
    await uow.session.flush()
    return policy

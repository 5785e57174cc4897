"""What a cancelled distribution plan answers: when, by whom and why it was cancelled.

Its own module, free of the plans' other imports, so that the reservations (which plans
call) can refuse goods for a cancelled plan with the same words as deliveries and top-ups."""

from services.logistics.models import DistributionPlan
from shared.problems import Conflict


def cancellation(plan: DistributionPlan) -> str | None:
    """When, by whom and why the plan was cancelled, in a sentence; None while it is not."""
    if plan.cancelled_at is None:
        return None
    return (
        f"distribution plan {plan.name!r} was cancelled at {plan.cancelled_at:%Y-%m-%d %H:%M} "
        f"UTC by {plan.cancelled_by}: {plan.cancel_reason}"
    )


def refuse_if_cancelled(plan: DistributionPlan, *, field: str | None = None) -> None:
    """A cancelled plan takes no more deliveries, top-ups or issues: 409 saying when, by
    whom and why (naming ``field`` when the plan was named by one)."""
    said = cancellation(plan)
    if said is None:
        return
    raise Conflict(said) if field is None else Conflict.on(field, said)

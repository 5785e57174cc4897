import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class CompoundClockOut(BaseModel):
    compound_id: uuid.UUID
    town_id: uuid.UUID
    code: str
    name: str
    last_positive_at: datetime | None = Field(description="The latest case confirmed in it")
    counting_from: datetime | None = Field(
        description="The last positive; for a compound that never had one, the start of its "
        "first round; empty when it has had neither"
    )
    counted_from: Literal["last_positive", "first_round"] | None
    days_without_positive: int | None = Field(description="Whole days since `counting_from`")
    epidemic_free_days: int = Field(description="The town's run of days that makes it eligible")
    eligible: bool = Field(description="It may be declared epidemic-free")
    eligible_reported_at: datetime | None = Field(
        description="When `testing.compound.epidemic_free_eligible` was last published for it"
    )

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.fields import FreeText, Moment


class ReceiptIn(BaseModel):
    """One delivery report, as the gateway sends it."""

    reference: FreeText = Field(max_length=120, description="The reference we sent the batch under")
    number: FreeText = Field(max_length=20, examples=["+8613800000001"])
    status: Literal["delivered", "failed"]
    provider_message_id: FreeText | None = Field(default=None, max_length=120)
    error: FreeText | None = Field(default=None, max_length=500)
    at: Moment


class ReceiptsIn(BaseModel):
    receipts: list[ReceiptIn] = Field(min_length=1, max_length=5000)


class ReceiptsOut(BaseModel):
    applied: int = Field(description="Receipts that changed a message's state")
    ignored: int = Field(description="Duplicates, late or unknown receipts: nothing changed")


class SwitchOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    from_gateway: str
    to_gateway: str
    reason: str
    error_rate: float
    latency_ms: float


class GatewaysOut(BaseModel):
    configured: list[str]
    active: str = Field(description="Where new messages go, by the last recorded switch")
    switches: list[SwitchOut] = Field(description="The latest switches, newest first")

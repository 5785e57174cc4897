import uuid

from pydantic import BaseModel, ConfigDict, Field


class PolicyIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "close_contact_days": 10,
                    "secondary_contact_days": 7,
                    "unit_neighbours_are_secondary": True,
                    "epidemic_free_days": 14,
                    "transfer_within_hours": 12,
                }
            ]
        }
    )

    close_contact_days: int = Field(ge=1, le=30, description="Quarantine of a close contact")
    secondary_contact_days: int = Field(
        ge=0, le=30, description="Quarantine of a secondary contact"
    )
    unit_neighbours_are_secondary: bool = Field(
        description="Whether the other households of a case's unit become secondary contacts"
    )
    epidemic_free_days: int = Field(
        ge=1, le=60, description="Days without a positive before a compound may be epidemic-free"
    )
    transfer_within_hours: int = Field(ge=1, le=72, description="A case's transfer target")


class PolicyOut(PolicyIn):
    model_config = ConfigDict(from_attributes=True)

    town_id: uuid.UUID

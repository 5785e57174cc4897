import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.logistics.models import ItemUnit
from services.logistics.stock.quantities import Amount, Quantity
from shared.fields import FreeText, Name


class ItemCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "town_id": "0193a1c2-0000-7000-8000-000000000001",
                    "name": "Rice",
                    "unit": "kg",
                    "category": "staples",
                    "perishable": False,
                }
            ]
        }
    )

    town_id: uuid.UUID
    name: Name = Field(max_length=120, description="Stripped; blank is refused", examples=["Rice"])
    unit: ItemUnit = Field(
        description="kg and jin take decimals (2.5 kg); a portion, box or piece is counted "
        "whole: a fraction of one is refused (422) wherever a quantity of it is stated"
    )
    category: FreeText = Field("", max_length=60)
    perishable: bool = Field(False, description="Receipts of a perishable item need an expiry")


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    town_id: uuid.UUID
    name: str
    unit: str
    category: str
    perishable: bool
    created_at: datetime


class KitLineIn(BaseModel):
    item_id: uuid.UUID
    quantity: Quantity


class KitCreate(BaseModel):
    town_id: uuid.UUID
    name: Name = Field(
        max_length=120,
        description="Stripped; blank is refused",
        examples=["Supply package"],
    )
    lines: list[KitLineIn] = Field(min_length=1, max_length=100)


class KitLineOut(BaseModel):
    item_id: uuid.UUID
    item: str
    unit: str
    quantity: Amount


class KitOut(BaseModel):
    id: uuid.UUID
    town_id: uuid.UUID
    name: str
    created_at: datetime
    lines: list[KitLineOut]

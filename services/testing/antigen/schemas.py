import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.fields import Finite, Moment
from shared.privacy import HealthRecord, PersonalName, PersonalPhone, PersonalRecord

AntigenResult = Literal["negative", "positive", "invalid"]


def _not_future(day: date | None) -> date | None:
    # A day ahead of UTC is still today somewhere east of it (the town is at +08:00).
    if day is not None and day > datetime.now(UTC).date() + timedelta(days=1):
        raise ValueError(f"day {day} is in the future")
    return day


class AntigenRowIn(BaseModel):
    """One resident's self-test, as a building leader's list carries it."""

    resident_id: uuid.UUID
    result: AntigenResult
    temperature: Finite | None = Field(
        None, ge=34, le=43, description="Body temperature in °C, 34–43"
    )
    reported_at: Moment | None = Field(
        None,
        description="When the test was read; now if empty. Not in the future, and on the "
        "report's day on the town's clock when the day is given (which it gives otherwise)",
    )


class AntigenReportIn(AntigenRowIn):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "resident_id": "0193a1c2-0000-7000-8000-0000000000a1",
                    "day": "2022-04-03",
                    "result": "negative",
                    "temperature": 36.6,
                }
            ]
        }
    )

    day: date | None = Field(
        None,
        description="The day of the test; if empty, the date on the town office's clock when "
        "it was read (`reported_at`, else now)",
    )

    _day = field_validator("day")(_not_future)


class AntigenBatchIn(BaseModel):
    building_id: uuid.UUID = Field(description="The building whose list this is")
    day: date | None = Field(
        None,
        description="The day of the tests; if empty, each row's date on the town office's "
        "clock when it was read (its `reported_at`, else now)",
    )
    reports: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=2_000,
        description="Rows with resident_id, result, temperature, reported_at; each checked "
        "on its own",
    )

    _day = field_validator("day")(_not_future)


class AntigenReportOut(HealthRecord):
    """A self-test: health data, so the name is masked unless revealed."""

    resource: ClassVar[str] = "antigen_reports"

    id: uuid.UUID
    resident_id: uuid.UUID
    name: PersonalName
    compound_id: uuid.UUID | None
    building_id: uuid.UUID | None
    unit_id: uuid.UUID | None
    day: date
    result: AntigenResult
    temperature: float | None
    reported_at: datetime
    reported_by: str


class Previous(BaseModel):
    result: AntigenResult
    temperature: float | None


class RecordedOut(AntigenReportOut):
    outcome: Literal["created", "unchanged", "corrected"] = Field(
        description="corrected: this replaced the resident's report of that day (see previous)"
    )
    previous: Previous | None = None
    task_id: uuid.UUID | None = Field(
        None, description="The PCR retest this positive test asked for, if it opened one"
    )


class BatchRowError(BaseModel):
    row: int = Field(description="Index of the report in the list, from 0")
    resident_id: str | None
    field: str
    message: str


class BatchOut(BaseModel):
    created: int
    unchanged: int
    corrected: int
    pcr_tasks_opened: int
    errors: list[BatchRowError]


class MissingResident(PersonalRecord):
    resource: ClassVar[str] = "directory_residents"
    record_id: ClassVar[str] = "resident_id"

    resident_id: uuid.UUID
    name: str
    unit_id: uuid.UUID | None
    household_id: uuid.UUID
    phone: PersonalPhone

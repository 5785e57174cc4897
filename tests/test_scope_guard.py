"""Unscoped queries on placed data cannot be written by accident."""

import pytest
from sqlalchemy import select

from cordon.platform import Platform
from services.registry.models import Resident
from shared.auth import UnscopedQueryError


async def test_a_session_without_a_scope_refuses_placed_data(platform: Platform) -> None:
    runtime = platform.runtime("registry")
    async with runtime.database.session() as session:
        with pytest.raises(UnscopedQueryError):
            await session.execute(select(Resident))

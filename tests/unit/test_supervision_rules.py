"""Which failures wait for the infrastructure, and back-off that stays capped for ever."""

import errno
import socket
import sqlite3

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared.bus.transport import TransportError
from shared.supervision import capped_backoff, is_transient


def wrapped(driver_error: Exception) -> DBAPIError:
    """How SQLAlchemy hands a driver's error to the handler."""
    try:
        try:
            raise driver_error
        except Exception as exc:
            raise DBAPIError("SELECT 1", None, exc) from exc
    except DBAPIError as error:
        return error


@pytest.mark.parametrize(
    "failure",
    [
        ConnectionRefusedError(111, "refused"),
        TimeoutError(),
        OSError("Multiple exceptions: [Errno 111] Connect call failed ('::1', 5432), ..."),
        OSError(errno.EHOSTUNREACH, "No route to host"),
        socket.gaierror(-2, "Name or service not known"),
        PoolTimeout("QueuePool limit of size 10 overflow 10 reached"),
        TransportError("broker unreachable"),
        wrapped(asyncpg.exceptions.ConnectionDoesNotExistError("closed mid-operation")),
        wrapped(asyncpg.exceptions.AdminShutdownError("terminating connection")),
        wrapped(asyncpg.exceptions.DeadlockDetectedError("deadlock detected")),
        OperationalError("BEGIN", None, sqlite3.OperationalError("database is locked")),
    ],
    ids=repr,
)
def test_infrastructure_failures_are_transient(failure: Exception) -> None:
    assert is_transient(failure)


@pytest.mark.parametrize(
    "failure",
    [
        RuntimeError("the handler failed"),
        ValueError("bad payload"),
        KeyError("zone"),
        FileNotFoundError(errno.ENOENT, "templates/sealed.txt"),
        PermissionError(errno.EACCES, "exports/"),
        IntegrityError("INSERT", None, sqlite3.IntegrityError("UNIQUE constraint failed")),
        wrapped(asyncpg.exceptions.UniqueViolationError("duplicate key")),
        OperationalError("SELECT", None, sqlite3.OperationalError("no such table: zones")),
    ],
    ids=repr,
)
def test_a_handlers_own_failures_are_not(failure: Exception) -> None:
    assert not is_transient(failure)


def test_a_handler_failure_raised_while_handling_an_outage_is_the_handlers() -> None:
    try:
        try:
            raise ConnectionResetError()
        except OSError:
            raise ValueError("a bug in the fallback") from None
    except ValueError as exc:
        assert not is_transient(exc)


def test_backoff_doubles_to_its_cap_and_never_overflows() -> None:
    delays = [capped_backoff(n, base=0.5, cap=30) for n in (1, 2, 3, 1_100, 10**9)]
    assert 0.25 <= delays[0] <= 0.5 and 0.5 <= delays[1] <= 1 and 1 <= delays[2] <= 2
    assert all(15 <= d <= 30 for d in delays[3:])
    assert len({capped_backoff(50, base=1, cap=30) for _ in range(20)}) > 1, "no jitter"

"""The one place driver errors become the service's own: an outage is `StoreUnavailable` (503).

Repositories wrap every driver call in `store_errors()`, so domain code never sees a
PyMongo exception: an outage is retryable, anything else is a `StoreFailure` (500).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from pymongo.errors import (
    ConnectionFailure,
    ExecutionTimeout,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteConcernError,
    WTimeoutError,
)

from shared.errors import StoreUnavailable
from shared.metrics import STORE_ERRORS

# A write concern error (WTimeoutError is one) means the write's durability is unknown, e.g. the
# node is shutting down: a retryable 503 like an outage, never a 500 after a half-done login.
OUTAGE_ERRORS = (
    ConnectionFailure,
    ServerSelectionTimeoutError,
    ExecutionTimeout,
    WriteConcernError,
    WTimeoutError,
)


class StoreFailure(Exception):
    """The store answered with an error that is not an outage (a bug or a refused command)."""


class DuplicateValue(Exception):
    """An insert hit a unique index; `field` names it (`email` or `username`)."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


def text_value(value: object) -> str:
    """A query value from caller input must be a plain string: an operator object never becomes a filter."""
    if not isinstance(value, str):
        raise TypeError(f"expected a string query value, got {type(value).__name__}")
    return value


@contextlib.asynccontextmanager
async def store_errors() -> AsyncIterator[None]:
    """Turn a driver outage into `StoreUnavailable`, any other driver error into `StoreFailure`."""
    try:
        yield
    except OUTAGE_ERRORS as exc:
        STORE_ERRORS.labels("auth").inc()
        raise StoreUnavailable(type(exc).__name__) from exc
    except PyMongoError as exc:
        raise StoreFailure(type(exc).__name__) from exc

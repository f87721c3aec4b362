"""The one way a test waits for something that happens on its own schedule."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 15.0  # generous: two shared cores under a test load; only the outcome is asserted


@overload
async def eventually(
    check: Callable[[], Awaitable[T | None]], what: str, timeout: float = ..., interval: float = ...
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T | None], what: str, timeout: float = ..., interval: float = ...
) -> T: ...


async def eventually(
    check: Callable[[], object],
    what: str,
    timeout: float = DEFAULT_TIMEOUT_S,
    interval: float = 0.05,
) -> object:
    """Call `check` (sync or async) until it returns something truthy, and return that.

    The event loop keeps running between calls, so background tasks make progress. After
    `timeout` seconds the test fails naming `what` and the last value seen.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        last = await result if inspect.isawaitable(result) else result
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")
        await asyncio.sleep(interval)


def eventually_sync(
    check: Callable[[], T | None], what: str, timeout: float = DEFAULT_TIMEOUT_S, interval: float = 0.05
) -> T:
    """`eventually` for tests without an event loop (processes, files, sockets)."""
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")
        time.sleep(interval)

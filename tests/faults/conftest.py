"""Fault-test fixtures: the in-process auth app (from tests/auth) and stand-ins that stop on exit.

Every process a fault test stops or kills is its own: a private store, a private
Redis, its own moderation. The session store and the machine's Redis are never touched.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.auth.conftest import app_factory, settings_factory
from tests.faults.support import FakeModeration

__all__ = ["app_factory", "fake_moderation", "settings_factory"]


@pytest.fixture
def fake_moderation() -> Iterator[FakeModeration]:
    fake = FakeModeration()
    try:
        yield fake
    finally:
        fake.stop()

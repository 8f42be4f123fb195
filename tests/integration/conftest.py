"""Fixtures of the integration tests (the nats-server ones are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from worker_support import Harness


@pytest.fixture
async def harness(nats_url: str) -> AsyncIterator[Harness]:
    """A NATS connection to this test's server and the workers the test starts on it, all closed after the test."""
    h = await Harness(nats_url).open()
    yield h
    await h.close()

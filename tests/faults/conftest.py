"""Fixtures of the fault-injection suite (the nats-server itself is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fault_support import connect


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Any]:
    """A connection to this test's nats-server that rides out restarts (:func:`fault_support.connect`), closed after
    the test."""
    conn = await connect(nats_url)
    yield conn
    await conn.close()


@pytest.fixture
def js(nc: Any) -> Any:
    """JetStream on :func:`nc`."""
    return nc.jetstream()

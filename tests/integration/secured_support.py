"""A nats-server running the config Kumeo generates for a Plan (its users, their permissions, encryption at rest),
the deployer's part of `pulumi up` on it, and connections as the Plan's identities: what the NATS security tests
(test_nats_permissions, test_consumer_ownership) share."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nats.js.api import ConsumerConfig, StreamConfig

from kumeo_iac.compile import Plan, derive_passwords, render_nats_config
from kumeo_iac.compile._security import DEPLOYER_USER
from kumeo_iac.local._nats_server import NatsServer
from kumeo_providers import connect, ensure_consumer, ensure_stream

SEED = "test-seed-0123456789abcdef"
ENCRYPTION_KEY = "kumeo-test-encryption-key-0123456789"


@contextlib.contextmanager
def secured_server(plan: Plan, extra_users: list[dict[str, Any]], tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[NatsServer, Plan, dict[str, str]]]:
    """A started nats-server running the config rendered for ``plan`` (with ``extra_users``) and encryption at
    rest, the Plan and its passwords; the server is removed on leaving the ``with`` block."""
    passwords = derive_passwords(plan, SEED)
    path = tmp_path / "nats.conf"
    path.write_text(render_nats_config(plan, passwords, store_dir=None, extra_users=extra_users))
    monkeypatch.setenv("JETSTREAM_KEY", ENCRYPTION_KEY)  # the server resolves $JETSTREAM_KEY from its environment
    server = NatsServer(config_file=path, store_dir=tmp_path / "js")
    server.start()
    try:
        yield server, plan, passwords
    finally:
        server.cleanup()


async def deploy(url: str, plan: Plan, passwords: dict[str, str], consumers: list[Any] | None = None) -> None:
    """What the providers do at `pulumi up`, as the deployer user: the workflow's streams, then ``consumers``
    (default: the agents' durables)."""
    nc = await connect(url, user=DEPLOYER_USER, password=passwords[DEPLOYER_USER])
    try:
        js = nc.jetstream()
        wf = plan.workflows[0]
        for s in wf.streams:
            await ensure_stream(js, StreamConfig.from_response(dict(s.config)))
        for c in wf.consumers if consumers is None else consumers:
            await ensure_consumer(js, c.stream, ConsumerConfig.from_response(dict(c.config)))
    finally:
        await nc.close()


async def connect_as(url: str, identity: Any, passwords: dict[str, str], errors: list[str]) -> Any:
    """A connection as ``identity`` (an agent's or the gateway's user and inbox prefix); the asynchronous errors the
    server reports to it (permissions violations) are appended to ``errors`` as nats-py words them."""

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    return await connect(url, user=identity.user, password=passwords[identity.user],
                         inbox_prefix=identity.inbox_prefix, error_cb=on_error)

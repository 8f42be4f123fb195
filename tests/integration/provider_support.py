"""What the provider integration tests share: inputs shaped as the Pulumi engine sends them, and ``check`` that must
pass before create/update/diff are called with its result."""

from __future__ import annotations

import asyncio
from typing import Any

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig


def orders_stream(**changes: Any) -> StreamConfig:
    """The ORDERS stream the provider tests deploy (``orders.>``, file storage, at most 1,000 messages), with
    ``changes``."""
    return StreamConfig(name="ORDERS", subjects=["orders.>"], storage=StorageType.FILE, max_msgs=1000).evolve(**changes)


def scorer_consumer(**changes: Any) -> ConsumerConfig:
    """The ``scorer`` durable on ORDERS as a worker's consumer is configured (explicit acks, 4 deliveries with
    backoff, ``orders.new``), with ``changes``."""
    return ConsumerConfig(
        durable_name="scorer",
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=12.0,
        max_deliver=4,
        backoff=[12.0, 15.0, 20.0],
        filter_subject="orders.new",
    ).evolve(**changes)


def as_engine_sends(value: Any) -> Any:
    """Ints as floats, as the Pulumi engine's protobuf Struct (and its mocks) deliver them."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, dict):
        return {k: as_engine_sends(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_engine_sends(v) for v in value]
    return value


def checked(provider: Any, news: dict[str, Any], olds: dict[str, Any] | None = None) -> dict[str, Any]:
    """The provider's ``check`` of ``news`` (as the engine sends them) against ``olds``; it must find no failure."""
    result = provider.check(olds or {}, as_engine_sends(news))
    assert result.failures == [], [(f.property, f.reason) for f in result.failures]
    return result.inputs


def on_server(url: str, action: Any, **connect: Any) -> Any:
    """Run ``action(js)`` against the server from a synchronous test, connected with ``connect`` options
    (``user=``, ``password=``…) as ``nats.connect`` takes them."""

    async def run() -> Any:
        nc = await nats.connect(url, **connect)
        try:
            return await action(nc.jetstream())
        finally:
            await nc.close()

    return asyncio.run(run())

"""Binding to a durable consumer the deployer created: workers and the gateway read, they never create.

The deployer owns every stream and consumer (the ``Workflow`` component's Consumer resources in a cluster, the
local runner under ``kumeo run``). A worker or target adapter only checks that its durable exists and then pulls
from it and acks. Its NATS identity has no ``CONSUMER.CREATE``: if it could create its own durable, it could also
re-create it with a wider filter (``kumeo.<workflow>.>``) and read every other agent's output.
"""

from __future__ import annotations

from typing import Any

import nats.js.errors

from kumeo_iac.errors import KumeoRuntimeError

__all__ = ["ConsumerMissing", "bind_durable", "is_missing"]

#: JetStream API error codes (``nats-server/server/errors.json``).
_STREAM_NOT_FOUND = 10059
_CONSUMER_NOT_FOUND = 10014


class ConsumerMissing(KumeoRuntimeError):
    """The durable consumer a worker or target adapter reads (or its stream) does not exist on the server."""

    def __init__(self, who: str, stream: str, durable: str, *, stream_missing: bool = False) -> None:
        self.stream = stream
        self.durable = durable
        self.stream_missing = stream_missing
        what = (f"the stream {stream!r} of its durable consumer {durable!r} does not exist" if stream_missing
                else f"its durable consumer {durable!r} on stream {stream!r} does not exist")
        super().__init__(
            f"{who}: {what}. Consumers are created by the deployer, never by workers: run `pulumi up --refresh` "
            "(or `kumeo up --refresh`) to create it again, or start `kumeo run` again")


def is_missing(exc: BaseException) -> bool:
    """Whether a JetStream error says the consumer or its stream is not there (a 404 from the API)."""
    return isinstance(exc, nats.js.errors.NotFoundError) or getattr(exc, "err_code", None) in (
        _STREAM_NOT_FOUND, _CONSUMER_NOT_FOUND)


async def bind_durable(js: Any, stream: str, durable: str, *, who: str) -> Any:
    """The ``ConsumerInfo`` of an existing durable; :class:`ConsumerMissing` naming ``who`` when it is not there.

    Only ``CONSUMER.INFO`` is called, the one JetStream call an agent's identity has for its durable besides
    ``MSG.NEXT`` and acks."""
    try:
        return await js.consumer_info(stream, durable)
    except nats.js.errors.NotFoundError as exc:
        raise ConsumerMissing(who, stream, durable,
                              stream_missing=getattr(exc, "err_code", None) == _STREAM_NOT_FOUND) from None

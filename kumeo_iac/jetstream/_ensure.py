"""Bring JetStream streams, consumers and key-value buckets to a desired configuration, idempotently.

The server decides what "differs" means: creating a stream that exists with the same configuration succeeds, a
different one is refused with err_code 10058, and only then is the stream updated. Every ensure function logs its
outcome (created, updated or unchanged) on the ``kumeo_providers.jetstream`` logger and reports every change
(created, updated, deleted) to the :class:`ChangeRecorder` installed with :func:`set_change_recorder` (the Pulumi
providers install one that records on the KUMEO_AUDIT stream while they deploy); without one nothing is recorded.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Protocol

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, ConsumerInfo, KeyValueConfig, StreamConfig, StreamInfo
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError
from nats.js.kv import KeyValue

from kumeo_iac.errors import KumeoDeployError
from kumeo_iac.jetstream._config import (
    comparable_config,
    key_value_config_from_inputs,
    key_value_config_from_stream,
    key_value_stream_name,
)
from kumeo_iac.jetstream._connect import describe_error
from kumeo_iac.jetstream._log import log as _log

__all__ = [
    "ChangeRecorder",
    "Outcome",
    "apply_consumer",
    "apply_key_value",
    "apply_stream",
    "delete_consumer",
    "delete_key_value",
    "delete_stream",
    "ensure_consumer",
    "ensure_key_value",
    "ensure_stream",
    "find_consumer",
    "find_key_value",
    "find_stream",
    "open_key_value",
    "set_change_recorder",
]

# JetStream API error codes (nats-server's errors.json) that change what we do next.
_STREAM_NAME_IN_USE = 10058  # "stream name already in use with a different configuration"

class Outcome(str, enum.Enum):
    """What an ensure function did to the server."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


class ChangeRecorder(Protocol):
    """Where the ensure and delete functions report the changes they make (an audit trail)."""

    def is_recording(self) -> bool:
        """Whether a change made now would be recorded (deletes read the old configuration only then)."""
        ...

    async def record_change(self, resource: str, action: str, name: str, before: Any, after: Any) -> None:
        """Record one change: ``resource`` is "stream", "consumer" or "key-value bucket", ``action`` is "create",
        "update" or "delete"; ``before``/``after`` are the configurations (None on a create or a delete)."""
        ...


_recorder: ChangeRecorder | None = None


def set_change_recorder(recorder: ChangeRecorder | None) -> None:
    """Report every change the ensure and delete functions make to ``recorder`` (None: to nobody)."""
    global _recorder
    _recorder = recorder


# -- streams ----------------------------------------------------------------------------------------------------


async def find_stream(js: JetStreamContext, name: str) -> StreamInfo | None:
    """Return the stream's info, or None when no such stream exists."""
    try:
        return await js.stream_info(name)
    except NotFoundError:
        return None
    except (TimeoutError, APIError, nats.errors.Error) as exc:
        raise _deploy_error("read", "stream", name, exc) from exc


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> StreamInfo:
    """Create the stream, or update it when it exists with a different configuration; return its info."""
    info, _ = await apply_stream(js, config)
    return info


async def apply_stream(js: JetStreamContext, config: StreamConfig) -> tuple[StreamInfo, Outcome]:
    """:func:`ensure_stream`, also saying what it did (created, updated or unchanged)."""
    name = _require_name(config.name, "stream", "name")
    before = await find_stream(js, name)
    existed = before is not None
    try:
        info = await js.add_stream(config)
        outcome = Outcome.UNCHANGED if existed else Outcome.CREATED
    except APIError as exc:
        if exc.err_code != _STREAM_NAME_IN_USE:
            raise _deploy_error("create", "stream", name, exc) from exc
        try:
            info = await js.update_stream(config)
        except (TimeoutError, APIError, nats.errors.Error) as update_exc:
            raise _deploy_error("update", "stream", name, update_exc) from update_exc
        outcome = Outcome.UPDATED
    except (TimeoutError, nats.errors.Error) as exc:
        raise _deploy_error("create", "stream", name, exc) from exc
    _log.info("stream %s %s", name, outcome.value)
    await _audit(outcome, "stream", name, before.config if before else None, config if not existed else info.config)
    return info, outcome


async def delete_stream(js: JetStreamContext, name: str) -> bool:
    """Delete the stream and every message and consumer in it; return False when it did not exist."""
    before = await find_stream(js, name) if _auditing() else None
    try:
        deleted = bool(await js.delete_stream(name))
    except NotFoundError:
        return False
    except (TimeoutError, APIError, nats.errors.Error) as exc:
        raise _deploy_error("delete", "stream", name, exc) from exc
    _log.info("stream %s deleted", name)
    await _audit_delete("stream", name, before.config if before else None)
    return deleted


# -- consumers --------------------------------------------------------------------------------------------------


def _consumer_name(config: ConsumerConfig) -> str:
    return _require_name(config.durable_name or config.name, "consumer", "durable_name")


async def find_consumer(js: JetStreamContext, stream: str, durable: str) -> ConsumerInfo | None:
    """Return the consumer's info, or None when it (or its stream) does not exist."""
    try:
        info: ConsumerInfo = await js.consumer_info(stream, durable)
    except NotFoundError:
        return None
    except (TimeoutError, APIError, nats.errors.Error) as exc:
        raise _deploy_error("read", "consumer", f"{stream}/{durable}", exc) from exc
    return info


async def ensure_consumer(js: JetStreamContext, stream: str, config: ConsumerConfig) -> ConsumerInfo:
    """Create the durable consumer on ``stream``, or update it in place; return its info.

    The server refuses to change the fields listed in ``kumeo_providers.consumer`` (deliver and ack policy,
    start position, replay, …): that failure is a :class:`KumeoDeployError` saying the consumer must be replaced.
    """
    info, _ = await apply_consumer(js, stream, config)
    return info


async def apply_consumer(js: JetStreamContext, stream: str, config: ConsumerConfig) -> tuple[ConsumerInfo, Outcome]:
    """:func:`ensure_consumer`, also saying what it did (created, updated or unchanged)."""
    durable = _consumer_name(config)
    where = f"{stream}/{durable}"
    before = await find_consumer(js, stream, durable)
    try:
        # Without an explicit action the server creates or updates, refusing only immutable changes.
        info = await js.add_consumer(stream, config)
    except (TimeoutError, APIError, nats.errors.Error) as exc:
        raise _deploy_error("create" if before is None else "update", "consumer", where, exc) from exc
    if before is None:
        outcome = Outcome.CREATED
    elif comparable_config(before.config) == comparable_config(info.config):
        outcome = Outcome.UNCHANGED
    else:
        outcome = Outcome.UPDATED
    _log.info("consumer %s %s", where, outcome.value)
    await _audit(outcome, "consumer", where, before.config if before else None,
                 config if before is None else info.config)
    return info, outcome


async def delete_consumer(js: JetStreamContext, stream: str, durable: str) -> bool:
    """Delete the consumer; return False when it (or its stream) did not exist."""
    before = await find_consumer(js, stream, durable) if _auditing() else None
    try:
        deleted = bool(await js.delete_consumer(stream, durable))
    except NotFoundError:
        return False
    except (TimeoutError, APIError, nats.errors.Error) as exc:
        raise _deploy_error("delete", "consumer", f"{stream}/{durable}", exc) from exc
    _log.info("consumer %s/%s deleted", stream, durable)
    await _audit_delete("consumer", f"{stream}/{durable}", before.config if before else None)
    return deleted


# -- key-value buckets ------------------------------------------------------------------------------------------

async def find_key_value(js: JetStreamContext, bucket: str) -> StreamInfo | None:
    """Return the info of the bucket's stream, or None when the bucket does not exist."""
    return await find_stream(js, key_value_stream_name(bucket))


async def ensure_key_value(js: JetStreamContext, config: KeyValueConfig) -> StreamInfo:
    """Create the key-value bucket, or update its stream when history, ttl, limits or description changed.

    Returns the info of the bucket's ``KV_<bucket>`` stream (:func:`key_value_config_from_stream` reads the
    bucket's configuration back from it).
    """
    info, _ = await apply_key_value(js, config)
    return info


async def apply_key_value(js: JetStreamContext, config: KeyValueConfig) -> tuple[StreamInfo, Outcome]:
    """:func:`ensure_key_value`, also saying what it did (created, updated or unchanged)."""
    bucket = _require_name(config.bucket, "key-value bucket", "bucket")
    stream = key_value_stream_name(bucket)
    live = await find_stream(js, stream)
    if live is None:
        try:
            await js.create_key_value(config)
        except (TimeoutError, APIError, nats.errors.Error) as exc:
            raise _deploy_error("create", "key-value bucket", bucket, exc) from exc
        info = await find_stream(js, stream)
        if info is None:
            raise KumeoDeployError(f"key-value bucket {bucket!r} vanished right after it was created")
        outcome = Outcome.CREATED
    else:
        # nats-py has no update for buckets: change the stream fields a bucket owns, as nats.go's UpdateKeyValue does.
        wanted = _key_value_stream_update(live.config, config)
        if comparable_config(wanted) == comparable_config(live.config):
            info, outcome = live, Outcome.UNCHANGED
        else:
            try:
                info = await js.update_stream(wanted)
            except (TimeoutError, APIError, nats.errors.Error) as exc:
                raise _deploy_error("update", "key-value bucket", bucket, exc) from exc
            outcome = Outcome.UPDATED
    _log.info("key-value bucket %s %s", bucket, outcome.value)
    await _audit(outcome, "key-value bucket", bucket, key_value_config_from_stream(live.config) if live else None,
                 config if live is None else key_value_config_from_stream(info.config))
    return info, outcome


def _key_value_stream_update(live: StreamConfig, config: KeyValueConfig) -> StreamConfig:
    # The duplicate window follows nats-py's create_key_value: two minutes, or the ttl when that is shorter.
    duplicate_window = 120.0
    if config.ttl and config.ttl < duplicate_window:
        duplicate_window = config.ttl
    return live.evolve(
        description=config.description,
        max_msgs_per_subject=config.history,
        max_age=config.ttl or 0.0,
        max_bytes=config.max_bytes if config.max_bytes is not None else -1,
        max_msg_size=config.max_value_size if config.max_value_size is not None else -1,
        num_replicas=config.replicas,
        storage=config.storage if config.storage is not None else live.storage,
        placement=config.placement,
        republish=config.republish,
        allow_direct=bool(config.direct),
        duplicate_window=duplicate_window,
    )


async def delete_key_value(js: JetStreamContext, bucket: str) -> bool:
    """Delete the bucket and every key in it; return False when it did not exist."""
    before = await find_key_value(js, bucket) if _auditing() else None
    try:
        deleted = bool(await js.delete_key_value(bucket))
    except NotFoundError:
        return False
    except (TimeoutError, APIError, nats.errors.Error) as exc:
        raise _deploy_error("delete", "key-value bucket", bucket, exc) from exc
    _log.info("key-value bucket %s deleted", bucket)
    await _audit_delete("key-value bucket", bucket, key_value_config_from_stream(before.config) if before else None)
    return deleted


async def open_key_value(js: JetStreamContext, config: KeyValueConfig | Mapping[str, Any]) -> KeyValue:
    """Bind the bucket ``config`` names, creating it with that configuration first when the server lacks it.

    ``config`` is a :class:`~nats.js.api.KeyValueConfig` or its wire shape (the Plan's, ttl in nanoseconds). An
    existing bucket is bound as it is, never updated: its owner (the deployer) decides its configuration.
    """
    wanted = config if isinstance(config, KeyValueConfig) else key_value_config_from_inputs(config)
    bucket = _require_name(wanted.bucket, "key-value bucket", "bucket")
    try:
        return await js.key_value(bucket)
    except nats.js.errors.BucketNotFoundError:
        pass
    await ensure_key_value(js, wanted)
    return await js.key_value(bucket)


# -- audit ------------------------------------------------------------------------------------------------------

_ACTIONS = {Outcome.CREATED: "create", Outcome.UPDATED: "update"}


def _auditing() -> bool:
    return _recorder is not None and _recorder.is_recording()


async def _audit(outcome: Outcome, kind: str, name: str, before: Any, after: Any) -> None:
    if outcome in _ACTIONS and _recorder is not None:
        await _recorder.record_change(kind, _ACTIONS[outcome], name, None if outcome is Outcome.CREATED else before,
                                      after)


async def _audit_delete(kind: str, name: str, before: Any) -> None:
    if _recorder is not None:
        await _recorder.record_change(kind, "delete", name, before, None)


# -- errors -----------------------------------------------------------------------------------------------------


def _require_name(name: str | None, kind: str, field: str) -> str:
    if not name:
        raise KumeoDeployError(f"a {kind} needs a {field}; set `{field}` in its configuration")
    return name


def _deploy_error(action: str, kind: str, name: str, exc: BaseException) -> KumeoDeployError:
    if isinstance(exc, nats.errors.NoRespondersError) or (
        isinstance(exc, ServiceUnavailableError) and not exc.description
    ):
        return KumeoDeployError(
            f"could not {action} {kind} {name!r}: JetStream does not answer on this server; "
            "start nats-server with JetStream enabled (`-js`)"
        )
    if isinstance(exc, APIError):
        detail = f"{exc.description} (err_code {exc.err_code})"
        hint = ""
        if "can not" in (exc.description or "") or "cannot" in (exc.description or ""):
            hint = f"; that setting is fixed once the {kind} exists: replace (delete and recreate) the {kind}"
        return KumeoDeployError(f"JetStream refused to {action} {kind} {name!r}: {detail}{hint}")
    return KumeoDeployError(f"could not {action} {kind} {name!r}: {describe_error(exc)}")


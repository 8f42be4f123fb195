"""Bring JetStream streams, consumers and key-value buckets to a desired configuration, idempotently.

This is the async core shared by the Pulumi providers (``pulumi up``) and the local runner (``kumeo run``), so both
apply a Plan the same way. The configurations are nats-py's own types (:class:`~nats.js.api.StreamConfig`,
:class:`~nats.js.api.ConsumerConfig`, :class:`~nats.js.api.KeyValueConfig`); the ``*_to_inputs`` and
``*_from_inputs`` helpers turn them into plain JSON dicts in the wire shape (``as_dict()``: durations in
nanoseconds) and back. That shape is what the Plan holds, what Pulumi stores and what ``nats stream add --config``
reads; Pulumi hands its ints back as floats, and the ``from`` direction turns them into ints again.

The server decides what "differs" means: creating a stream that exists with the same configuration succeeds, a
different one is refused with err_code 10058, and only then is the stream updated. Every ensure function logs its
outcome (created, updated or unchanged) on the ``kumeo_providers.jetstream`` logger, and reports every change
(created, updated, deleted) to :func:`kumeo_providers._audit.record_change`, which records it on the KUMEO_AUDIT
stream while a provider has auditing on (:func:`kumeo_providers._audit.auditing`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import enum
import functools
import logging
import ssl
import types
import typing
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import nats
import nats.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import (
    Base,
    ConsumerConfig,
    ConsumerInfo,
    KeyValueConfig,
    StreamConfig,
    StreamConsumerLimits,
    StreamInfo,
)
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

from kumeo_iac.errors import KumeoDeployError

__all__ = [
    "ConfigFieldError",
    "Outcome",
    "canonical_inputs",
    "coerce_field",
    "config_defaults",
    "config_field_types",
    "config_from_inputs",
    "connect",
    "consumer_config_from_inputs",
    "consumer_config_to_inputs",
    "delete_consumer",
    "delete_key_value",
    "delete_stream",
    "ensure_consumer",
    "ensure_key_value",
    "ensure_stream",
    "field_from_input",
    "find_consumer",
    "find_key_value",
    "find_stream",
    "key_value_config_from_inputs",
    "key_value_config_from_stream",
    "key_value_config_to_inputs",
    "key_value_stream_name",
    "stream_config_from_inputs",
    "stream_config_to_inputs",
    "with_jetstream",
    "without_server_metadata",
]

_log = logging.getLogger("kumeo_providers.jetstream")

# JetStream API error codes (nats-server's errors.json) that change what we do next.
_STREAM_NAME_IN_USE = 10058  # "stream name already in use with a different configuration"
_KV_STREAM_PREFIX = "KV_"
# The server stamps its own keys into `metadata` (`_nats.ver`, `_nats.level`, …); they are not ours to compare.
_SERVER_METADATA_PREFIX = "_nats."
# Errors after which trying again cannot help.
_FATAL_CONNECT_ERRORS = (
    nats.errors.AuthorizationError,
    nats.errors.InvalidUserCredentialsError,
    nats.errors.SecureConnRequiredError,
    nats.errors.SecureConnWantedError,
)

_B = TypeVar("_B", bound=Base)


class Outcome(str, enum.Enum):
    """What an ensure function did to the server."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


# -- connecting -------------------------------------------------------------------------------------------------


def _publish_async_errors_reach_the_future() -> None:
    """Work around nats.py#985: an error PubAck (``503 maximum messages exceeded`` from a full stream with
    ``discard: new``, a wrong expected stream…) must fail the ``publish_async`` future.

    nats-py 2.16's ``_handle_async_reply`` calls ``APIError.from_error``, which *raises* instead of returning, so
    the error escapes into the subscription task ("nats: encountered error") and the future is never resolved:
    every publisher waits its whole timeout and sees a timeout instead of the server's refusal. Applied only while
    ``from_error`` still raises (the fix upstream, PR #994, makes this a no-op).
    """
    from nats.js import api
    from nats.js import client as js_client
    from nats.js import errors as js_errors

    if getattr(JetStreamContext, "_kumeo_async_reply_fixed", False):
        return
    try:
        js_errors.APIError.from_error({"code": 503, "err_code": 10077, "description": "probe"})
    except js_errors.APIError:
        pass
    else:
        return

    import json

    async def _handle_async_reply(self: Any, msg: Any) -> None:
        future = self._publish_async_futures.get(msg.subject[len(self._async_reply_prefix):])
        if future is None or future.done():
            return
        if msg.headers and msg.headers.get(api.Header.STATUS) == js_client.NO_RESPONDERS_STATUS:
            future.set_exception(js_errors.NoStreamResponseError)
            return
        try:
            resp = json.loads(msg.data)
            if "error" in resp:
                try:
                    error: BaseException = js_errors.APIError.from_error(resp["error"])
                except js_errors.APIError as raised:
                    error = raised
                future.set_exception(error)
                return
            future.set_result(api.PubAck.from_response(resp))
        except (asyncio.CancelledError, asyncio.InvalidStateError):
            pass
        except Exception as exc:  # noqa: BLE001 - a malformed answer fails the publish, never hangs it
            future.set_exception(exc)

    JetStreamContext._handle_async_reply = _handle_async_reply  # type: ignore[method-assign]
    JetStreamContext._kumeo_async_reply_fixed = True  # type: ignore[attr-defined]


_publish_async_errors_reach_the_future()


async def connect(
    url: str,
    *,
    timeout_s: float = 10.0,
    user: str | None = None,
    password: str | None = None,
    token: str | None = None,
    creds_file: str | None = None,
    name: str = "kumeo",
    **options: Any,
) -> NATS:
    """Connect to NATS at ``url``, retrying with backoff until it answers or ``timeout_s`` has passed.

    Raises :class:`KumeoDeployError` naming the URL and the last error when the server never answers, and at
    once when it refuses the credentials (retrying cannot fix those). Extra ``options`` go to ``nats.connect``;
    by default the client gives up reconnecting quickly, which suits a deploy; long-lived workers pass their own
    ``max_reconnect_attempts`` and ``reconnect_time_wait``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    user_error_cb = options.pop("error_cb", None)
    options.setdefault("max_reconnect_attempts", 1)
    options.setdefault("reconnect_time_wait", 0.05)
    credentials: dict[str, Any] = {}
    if user is not None:
        credentials["user"] = user
    if password is not None:
        credentials["password"] = password
    if token is not None:
        credentials["token"] = token
    if creds_file is not None:
        credentials["user_credentials"] = creds_file

    attempts = 0
    delay = 0.05
    last_error: BaseException | None = None
    while True:
        attempts += 1
        remaining = deadline - loop.time()
        seen: list[BaseException] = []

        hopeless = asyncio.Event()

        async def error_cb(exc: Exception, seen: list[BaseException] = seen, hopeless: asyncio.Event = hopeless) -> None:
            seen.append(exc)
            _log.debug("nats client error (%s): %r", url, exc)
            if isinstance(exc, ssl.SSLCertVerificationError):
                hopeless.set()  # nats-py keeps waiting after the handshake fails; an untrusted certificate stays so
            if user_error_cb is not None:
                await user_error_cb(exc)

        nc = NATS()
        try:
            await _connect_unless_hopeless(
                nc.connect(
                    url,
                    name=name,
                    connect_timeout=max(0.05, min(2.0, remaining)),
                    error_cb=error_cb,
                    **credentials,
                    **options,
                ),
                hopeless,
                timeout=max(0.05, remaining),
            )
            return nc
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            await _close_quietly(nc)
            bad_tls = next((e for e in [*seen, exc] if isinstance(e, ssl.SSLCertVerificationError)), None)
            if bad_tls is not None:
                raise KumeoDeployError(
                    f"TLS with NATS at {url} failed: {_describe(bad_tls)}; check the CA that signed the server's "
                    "certificate (tls_ca_file), the client certificate and key if the server asks for one, and "
                    "that the host in the URL is one the certificate names"
                ) from bad_tls
            fatal = next((e for e in [*seen, exc] if _is_fatal_connect_error(e)), None)
            if fatal is not None:
                raise KumeoDeployError(
                    f"NATS at {url} refused the connection: {_describe(fatal)}; check the credentials "
                    "(user/password, token or creds file) given for this server"
                ) from fatal
            # NoServersError and our own timeout say little; the client saw the real cause (refused, reset, …).
            vague = isinstance(exc, (nats.errors.NoServersError, TimeoutError))
            last_error = seen[-1] if seen and vague else exc
        except ValueError as exc:  # a malformed URL; retrying will not fix it
            await _close_quietly(nc)
            raise KumeoDeployError(f"cannot connect to NATS at {url!r}: {exc}") from exc
        if loop.time() + delay >= deadline:
            raise KumeoDeployError(
                f"could not connect to NATS at {url} within {timeout_s:g} s ({attempts} attempts); "
                f"last error: {_describe(last_error)}. Is nats-server running and reachable there?"
            ) from last_error
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


async def _connect_unless_hopeless(connecting: Awaitable[None], hopeless: asyncio.Event, *, timeout: float) -> None:
    """Await ``connecting`` for at most ``timeout`` seconds, giving up at once (TimeoutError) when ``hopeless`` is
    set: the caller then reads the reason from the errors the client reported."""
    attempt = asyncio.ensure_future(connecting)
    stop = asyncio.ensure_future(hopeless.wait())
    try:
        done, _ = await asyncio.wait({attempt, stop}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # our caller was cancelled: the attempt goes with it
        attempt.cancel()
        raise
    finally:
        stop.cancel()
    if attempt in done:
        attempt.result()
        return
    attempt.cancel()
    try:
        await attempt
    except (asyncio.CancelledError, Exception) as exc:  # noqa: BLE001 - abandoned: its error is already reported
        _log.debug("abandoned connection attempt ended with %r", exc)
    raise TimeoutError


def _is_fatal_connect_error(exc: BaseException) -> bool:
    if isinstance(exc, _FATAL_CONNECT_ERRORS):
        return True
    # nats-py reports the server's -ERR 'Authorization Violation' as a plain nats.errors.Error.
    text = str(exc).lower()
    return isinstance(exc, nats.errors.Error) and ("authorization violation" in text or "authentication" in text)


async def _close_quietly(nc: NATS) -> None:
    try:
        await nc.close()
    except Exception:  # a half-open client may fail to close; it holds nothing we need
        pass


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "none"
    text = str(exc) or getattr(exc, "description", None) or ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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
    info, _ = await _ensure_stream(js, config)
    return info


async def _ensure_stream(js: JetStreamContext, config: StreamConfig) -> tuple[StreamInfo, Outcome]:
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
        return await js.consumer_info(stream, durable)
    except NotFoundError:
        return None
    except (TimeoutError, APIError, nats.errors.Error) as exc:
        raise _deploy_error("read", "consumer", f"{stream}/{durable}", exc) from exc


async def ensure_consumer(js: JetStreamContext, stream: str, config: ConsumerConfig) -> ConsumerInfo:
    """Create the durable consumer on ``stream``, or update it in place; return its info.

    The server refuses to change the fields listed in :mod:`kumeo_providers.consumer` (deliver and ack policy,
    start position, replay, …): that failure is a :class:`KumeoDeployError` saying the consumer must be replaced.
    """
    info, _ = await _ensure_consumer(js, stream, config)
    return info


async def _ensure_consumer(js: JetStreamContext, stream: str, config: ConsumerConfig) -> tuple[ConsumerInfo, Outcome]:
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
    elif _comparable(before.config) == _comparable(info.config):
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


def key_value_stream_name(bucket: str) -> str:
    """The stream that holds a key-value bucket (``KV_<bucket>``, nats-py's and the server's convention)."""
    return f"{_KV_STREAM_PREFIX}{bucket}"


def key_value_config_from_stream(config: StreamConfig) -> KeyValueConfig:
    """Read a bucket's KeyValueConfig back from the StreamConfig of its ``KV_<bucket>`` stream."""
    name = config.name or ""
    bucket = name.removeprefix(_KV_STREAM_PREFIX)
    max_bytes = config.max_bytes if config.max_bytes is not None and config.max_bytes >= 0 else None
    max_value_size = config.max_msg_size if config.max_msg_size is not None and config.max_msg_size >= 0 else None
    return KeyValueConfig(
        bucket=bucket,
        description=config.description,
        max_value_size=max_value_size,
        history=config.max_msgs_per_subject,
        ttl=config.max_age or None,
        max_bytes=max_bytes,
        storage=config.storage,
        replicas=config.num_replicas or 1,
        placement=config.placement,
        republish=config.republish,
        direct=config.allow_direct,
    )


async def find_key_value(js: JetStreamContext, bucket: str) -> StreamInfo | None:
    """Return the info of the bucket's stream, or None when the bucket does not exist."""
    return await find_stream(js, key_value_stream_name(bucket))


async def ensure_key_value(js: JetStreamContext, config: KeyValueConfig) -> StreamInfo:
    """Create the key-value bucket, or update its stream when history, ttl, limits or description changed.

    Returns the info of the bucket's ``KV_<bucket>`` stream (:func:`key_value_config_from_stream` reads the
    bucket's configuration back from it).
    """
    info, _ = await _ensure_key_value(js, config)
    return info


async def _ensure_key_value(js: JetStreamContext, config: KeyValueConfig) -> tuple[StreamInfo, Outcome]:
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
        if _comparable(wanted) == _comparable(live.config):
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


# -- audit ------------------------------------------------------------------------------------------------------

_ACTIONS = {Outcome.CREATED: "create", Outcome.UPDATED: "update"}


def _auditing() -> bool:
    from kumeo_providers._audit import is_auditing

    return is_auditing()


async def _audit(outcome: Outcome, kind: str, name: str, before: Any, after: Any) -> None:
    if outcome in _ACTIONS:
        from kumeo_providers._audit import record_change

        await record_change(kind, _ACTIONS[outcome], name, None if outcome is Outcome.CREATED else before, after)


async def _audit_delete(kind: str, name: str, before: Any) -> None:
    from kumeo_providers._audit import record_change

    await record_change(kind, "delete", name, before, None)


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
    return KumeoDeployError(f"could not {action} {kind} {name!r}: {_describe(exc)}")


# -- configuration <-> plain inputs -----------------------------------------------------------------------------
#
# Inputs are the wire shape, the dicts nats-py's `as_dict()` gives and `nats stream add --config` reads: durations
# in nanoseconds (integers), enums as their strings, None left out. The Plan stores configs in this shape, Pulumi
# keeps them in its state, and `kumeo render` writes them, so all three read the same.

# Fields nats-py keeps in seconds but the wire carries in nanoseconds (the conversions of nats-py's from_response).
_NANOSECOND_FIELDS: dict[type[Base], frozenset[str]] = {
    StreamConfig: frozenset({"max_age", "duplicate_window", "subject_delete_marker_ttl"}),
    StreamConsumerLimits: frozenset({"inactive_threshold"}),
    ConsumerConfig: frozenset({"ack_wait", "idle_heartbeat", "inactive_threshold", "backoff"}),
    KeyValueConfig: frozenset({"ttl", "limit_marker_ttl"}),
}
_NANOSECONDS_PER_SECOND = 10**9


def stream_config_to_inputs(config: StreamConfig) -> dict[str, Any]:
    """A StreamConfig as plain JSON data in the wire shape (``as_dict()``: nanoseconds, enum strings, no None)."""
    return canonical_inputs(config.as_dict())


def stream_config_from_inputs(inputs: Mapping[str, Any]) -> StreamConfig:
    """Build a StreamConfig from wire-shaped inputs; unknown keys are ignored, integral floats become ints."""
    return config_from_inputs(StreamConfig, inputs)


def consumer_config_to_inputs(config: ConsumerConfig) -> dict[str, Any]:
    """A ConsumerConfig as plain JSON data in the wire shape (``as_dict()``: nanoseconds, enum strings, no None)."""
    return canonical_inputs(config.as_dict())


def consumer_config_from_inputs(inputs: Mapping[str, Any]) -> ConsumerConfig:
    """Build a ConsumerConfig from wire-shaped inputs; unknown keys are ignored, integral floats become ints."""
    return config_from_inputs(ConsumerConfig, inputs)


def key_value_config_to_inputs(config: KeyValueConfig) -> dict[str, Any]:
    """A KeyValueConfig as plain JSON data in nats-py's ``as_dict()`` shape (``ttl`` in nanoseconds, no None)."""
    data = config.as_dict()
    if config.limit_marker_ttl is not None:  # as_dict drops this client-side setting; keep it, in nanoseconds
        data["limit_marker_ttl"] = Base._to_nanoseconds(config.limit_marker_ttl)
    return canonical_inputs(data)


def key_value_config_from_inputs(inputs: Mapping[str, Any]) -> KeyValueConfig:
    """Build a KeyValueConfig from ``as_dict()``-shaped inputs (ttl in nanoseconds); unknown keys are ignored."""
    return config_from_inputs(KeyValueConfig, inputs)


def canonical_inputs(value: Any) -> Any:
    """Wire-shaped data in one canonical form: integral floats as ints, enums as strings, None dropped from dicts."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime.datetime):
        return Base._to_utc_iso(value)
    if isinstance(value, Base):
        return canonical_inputs(value.as_dict())
    if isinstance(value, Mapping):
        return {str(k): canonical_inputs(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [canonical_inputs(v) for v in value]
    return value


class ConfigFieldError(KumeoDeployError):
    """A configuration field has a value of the wrong type or outside its allowed values."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


def config_from_inputs(config_type: type[_B], inputs: Mapping[str, Any], *, path: str = "config") -> _B:
    """Build a nats-py config dataclass (nested ones included) from wire-shaped inputs.

    Unknown keys are ignored, as nats-py ignores fields from newer servers; a value of the wrong type raises
    :class:`ConfigFieldError` naming the field.
    """
    if isinstance(inputs, config_type):
        return inputs
    if not isinstance(inputs, Mapping):
        raise ConfigFieldError(path, f"expected an object, got {_kind_of(inputs)}")
    params = {}
    for key, value in inputs.items():
        if value is None or key not in config_field_types(config_type):
            continue
        params[key] = field_from_input(config_type, key, value, f"{path}.{key}")
    try:
        return config_type(**params)
    except TypeError as exc:
        missing = [
            f.name
            for f in dataclasses.fields(config_type)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in params
        ]
        reason = f"missing required field(s) {', '.join(missing)}" if missing else str(exc)
        raise ConfigFieldError(path, reason) from exc


def field_from_input(config_type: type[Base], key: str, value: Any, path: str) -> Any:
    """One wire-shaped field as the typed value nats-py's dataclass holds (nanoseconds become seconds)."""
    hint = config_field_types(config_type)[key]
    if key in _NANOSECOND_FIELDS.get(config_type, ()):
        if isinstance(value, (list, tuple)):
            value = [_seconds(v, f"{path}[{i}]") for i, v in enumerate(value)]
        else:
            value = _seconds(value, path)
    return coerce_field(hint, value, path)


def _seconds(nanoseconds: Any, path: str) -> float:
    if isinstance(nanoseconds, bool) or not isinstance(nanoseconds, (int, float)):
        raise ConfigFieldError(path, f"expected a duration in nanoseconds (an integer), got {_kind_of(nanoseconds)}")
    return nanoseconds / _NANOSECONDS_PER_SECOND


def config_field_types(config_type: type[Base]) -> Mapping[str, Any]:
    """The resolved type of every field of a nats-py config dataclass."""
    return _type_hints(config_type)


@functools.cache
def _type_hints(config_type: type[Base]) -> Mapping[str, Any]:
    return types.MappingProxyType(typing.get_type_hints(config_type))


@functools.cache
def config_defaults(config_type: type[Base]) -> Mapping[str, Any]:
    """The wire-shaped value nats-py sends for every field left unset (``as_dict()`` of a bare config)."""
    required = {
        f.name: "_"
        for f in dataclasses.fields(config_type)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    data = canonical_inputs(config_type(**required).as_dict())
    return types.MappingProxyType({k: v for k, v in data.items() if k not in required})


def coerce_field(hint: Any, value: Any, path: str) -> Any:
    """Convert one plain value to the type a nats-py dataclass field declares, or raise ConfigFieldError."""
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        if value is None:
            return None
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(options) == 1:
            return coerce_field(options[0], value, path)
        return value
    if hint is Any:
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigFieldError(path, f"expected a list, got {_kind_of(value)}")
        (item,) = typing.get_args(hint) or (Any,)
        return [coerce_field(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigFieldError(path, f"expected an object, got {_kind_of(value)}")
        _, item = typing.get_args(hint) or (str, Any)
        return {str(k): coerce_field(item, v, f"{path}.{k}") for k, v in value.items()}
    if not isinstance(hint, type):
        return value
    if issubclass(hint, enum.Enum):
        if isinstance(value, hint):
            return value
        try:
            return hint(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in hint)
            raise ConfigFieldError(path, f"{value!r} is not one of {allowed}") from None
    if issubclass(hint, Base):
        return config_from_inputs(hint, value, path=path)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigFieldError(path, f"expected true or false, got {_kind_of(value)}")
    if hint is int:
        if isinstance(value, bool):
            raise ConfigFieldError(path, "expected an integer, got a boolean")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigFieldError(path, f"expected an integer, got {_kind_of(value)}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigFieldError(path, f"expected a number, got {_kind_of(value)}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigFieldError(path, f"expected a string, got {_kind_of(value)}")
    if hint is datetime.datetime:
        if isinstance(value, datetime.datetime):
            return value
        if isinstance(value, str):
            try:
                return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                pass
        raise ConfigFieldError(path, f"expected an RFC 3339 timestamp, got {_kind_of(value)}")
    return value


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def _comparable(config: Base) -> dict[str, Any]:
    data = canonical_inputs(config)
    if isinstance(data.get("metadata"), dict):
        data["metadata"] = without_server_metadata(data["metadata"])
    return data


def without_server_metadata(metadata: Mapping[str, str] | None) -> dict[str, str] | None:
    """Drop the ``_nats.*`` keys the server adds to a stream's or consumer's metadata."""
    if metadata is None:
        return None
    return {k: v for k, v in metadata.items() if not k.startswith(_SERVER_METADATA_PREFIX)}


# -- running from synchronous code ------------------------------------------------------------------------------

_R = TypeVar("_R")


async def with_jetstream(
    url: str,
    action: Callable[[JetStreamContext], Awaitable[_R]],
    *,
    timeout_s: float = 10.0,
    **connect_options: Any,
) -> _R:
    """Connect, run ``action`` with a JetStream context, and close the connection whatever happens."""
    nc = await connect(url, timeout_s=timeout_s, **connect_options)
    try:
        return await action(nc.jetstream(timeout=max(2.0, min(timeout_s, 10.0))))
    finally:
        await _close_quietly(nc)

"""The deploy audit trail: every change the JetStream providers make, recorded as JSON on the stream KUMEO_AUDIT.

While a provider creates, updates or deletes (``pulumi up``/``destroy``), an :class:`Auditor` is active on the
connection. Every ensure/delete function of :mod:`kumeo_providers._jetstream` that changes the server reports
through :func:`record_change`, and the auditor publishes one record on ``kumeo.audit.deploy``::

    {"time": "2025-01-31T12:00:00.123456Z", "resource": "stream", "action": "update", "name": "KUMEO_FRAUD",
     "before": {"max_age": 86400000000000}, "after": {"max_age": 604800000000000},
     "actor": "pulumi:stream", "server": "nats://nats:4222"}

``before``/``after`` summarise the configuration in the wire shape: the whole requested configuration on a create
(``before`` null), only the fields that changed on an update, the last live configuration on a delete (``after``
null). "Unchanged" outcomes are not changes and are not recorded. Outside a provider (``kumeo run``, a worker
re-creating its consumer) no auditor is active and nothing is recorded.

The audit stream is created on first use (file storage, a year of history, ``deny_delete`` and ``deny_purge``, so
records cannot be removed through the JetStream API; the generated server config also forbids the deployer to
update or delete the stream). It is ensured *before* the provider changes anything, so a server that cannot take
audit records fails the deploy before any change is made.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime
import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, NotFoundError

from kumeo_iac.errors import KumeoDeployError

__all__ = [
    "AUDIT_STREAM",
    "AUDIT_SUBJECT",
    "AuditRecord",
    "Auditor",
    "audit_stream_config",
    "auditing",
    "is_auditing",
    "read_audit",
    "record_change",
]

AUDIT_STREAM = "KUMEO_AUDIT"
AUDIT_SUBJECT = "kumeo.audit.deploy"
#: How long audit records are kept (a year and a bit, for yearly reviews).
AUDIT_MAX_AGE_SECONDS = 400 * 24 * 3600.0

_log = logging.getLogger("kumeo_providers.audit")
_current: contextvars.ContextVar[Auditor | None] = contextvars.ContextVar("kumeo_audit", default=None)


@dataclasses.dataclass(frozen=True)
class AuditRecord:
    """One change a provider made to the JetStream server."""

    time: str
    resource: str  # "stream" | "consumer" | "key-value bucket"
    action: str  # "create" | "update" | "delete"
    name: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    actor: str
    server: str

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":")).encode()


def audit_stream_config() -> StreamConfig:
    """The configuration of the KUMEO_AUDIT stream."""
    return StreamConfig(
        name=AUDIT_STREAM,
        description="Kumeo deploy audit: every create/update/delete the JetStream providers make",
        subjects=[AUDIT_SUBJECT],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=AUDIT_MAX_AGE_SECONDS,
        deny_delete=True,
        deny_purge=True,
        allow_rollup_hdrs=False,
    )


class Auditor:
    """Publishes the audit records of one connection (see :func:`auditing`)."""

    def __init__(self, js: JetStreamContext, *, actor: str, server: str) -> None:
        self.js = js
        self.actor = actor
        self.server = server
        #: The records this auditor published, in order (what tests and callers may inspect).
        self.records: list[AuditRecord] = []

    async def open(self) -> None:
        """Make sure the audit stream exists (creating it is itself recorded)."""
        try:
            await self.js.stream_info(AUDIT_STREAM)
            return
        except NotFoundError:
            pass
        except (TimeoutError, APIError, nats.errors.Error) as exc:
            raise KumeoDeployError(f"cannot read the audit stream {AUDIT_STREAM}: {exc!r}; no change was made") from exc
        config = audit_stream_config()
        try:
            await self.js.add_stream(config)
        except (TimeoutError, APIError, nats.errors.Error) as exc:
            raise KumeoDeployError(
                f"cannot create the audit stream {AUDIT_STREAM} (subject {AUDIT_SUBJECT}): {exc!r}; no change was "
                "made. The deployer's NATS user needs $JS.API.STREAM.CREATE.KUMEO_AUDIT and publish on "
                f"{AUDIT_SUBJECT}"
            ) from exc
        await self.record("stream", "create", AUDIT_STREAM, None, summary(config))

    async def record(self, resource: str, action: str, name: str, before: Any, after: Any) -> AuditRecord:
        record = AuditRecord(
            time=datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z"),
            resource=resource,
            action=action,
            name=name,
            before=before,
            after=after,
            actor=self.actor,
            server=self.server,
        )
        try:
            await self.js.publish(AUDIT_SUBJECT, record.to_json(), stream=AUDIT_STREAM)
        except (TimeoutError, APIError, nats.errors.Error) as exc:
            # The change is made and cannot be undone here; failing the deploy now would only desynchronise
            # Pulumi's state from the server. Say so loudly instead.
            _log.error("%s %s %s was made but its audit record was not stored: %r", resource, name, action, exc)
        self.records.append(record)
        return record


@contextlib.asynccontextmanager
async def auditing(js: JetStreamContext, *, actor: str, server: str) -> AsyncIterator[Auditor]:
    """Record every change made through ``js`` inside the block on the audit stream."""
    auditor = Auditor(js, actor=actor, server=_without_credentials(server))
    await auditor.open()
    token = _current.set(auditor)
    try:
        yield auditor
    finally:
        _current.reset(token)


def is_auditing() -> bool:
    """True inside :func:`auditing` (deletes then read the live configuration first, for ``before``)."""
    return _current.get() is not None


async def record_change(resource: str, action: str, name: str, before: Any = None, after: Any = None) -> None:
    """Report one change; a no-op unless an auditor is active. ``before``/``after`` are nats-py configs or dicts."""
    auditor = _current.get()
    if auditor is None:
        return
    old, new = summary(before), summary(after)
    if action == "update" and old is not None and new is not None:
        old, new = _changed(old, new)
    await auditor.record(resource, action, name, old, new)


async def read_audit(js: JetStreamContext, *, start_seq: int = 1, limit: int = 10_000) -> list[dict[str, Any]]:
    """The audit records stored on the server from ``start_seq`` on, oldest first."""
    try:
        info = await js.stream_info(AUDIT_STREAM)
    except NotFoundError:
        return []
    out: list[dict[str, Any]] = []
    seq = max(start_seq, info.state.first_seq or 1)
    while seq <= (info.state.last_seq or 0) and len(out) < limit:
        try:
            msg = await js.get_msg(AUDIT_STREAM, seq)
        except NotFoundError:
            seq += 1
            continue
        out.append(json.loads(msg.data or b"{}"))
        seq += 1
    return out


# -- summaries --------------------------------------------------------------------------------------------------


def summary(config: Any) -> dict[str, Any] | None:
    """A configuration as plain wire-shaped JSON (None stays None), without the server's own metadata keys."""
    if config is None:
        return None
    from kumeo_providers._jetstream import canonical_inputs, without_server_metadata

    data = canonical_inputs(config)
    if not isinstance(data, dict):
        return {"value": data}
    if isinstance(data.get("metadata"), dict):
        data["metadata"] = without_server_metadata(data["metadata"])
    return data


def _changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    keys = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return {k: before.get(k) for k in keys}, {k: after.get(k) for k in keys}


def _without_credentials(url: str) -> str:
    """``nats://user:pass@host:4222`` → ``nats://host:4222``: audit records never carry secrets."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url.rpartition("@")[2]
    return f"{scheme}://{rest.rpartition('@')[2]}"

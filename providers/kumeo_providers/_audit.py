"""The deploy audit trail: every change the JetStream providers make, recorded as JSON on the stream KUMEO_AUDIT.

While a provider creates, updates or deletes (``pulumi up``/``destroy``), an :class:`Auditor` is active on the
connection. Every ensure/delete function of :mod:`kumeo_iac.jetstream` that changes the server reports
through :func:`record_change`, and the auditor publishes one record on ``kumeo.audit.deploy``::

    {"time": "2025-01-31T12:00:00.123456Z", "resource": "stream", "action": "update", "name": "KUMEO_FRAUD",
     "before": {"max_age": 86400000000000}, "after": {"max_age": 604800000000000},
     "actor": "pulumi:stream", "server": "nats://nats:4222",
     "who": {"nats": {"user": "kumeo-deployer", "auth": "password"},
             "pulumi": {"project": "fraud", "stack": "prod", "organization": null, "user": "alice"}}}

``before``/``after`` summarise the configuration in the wire shape: the whole requested configuration on a create
(``before`` null), only the fields that changed on an update, the last live configuration on a delete (``after``
null). "Unchanged" outcomes are not changes and are not recorded. ``who`` (:func:`deployer`) says who made the
change: the NATS identity the provider connected as, and the Pulumi project, stack, organization and (OS) user of
the process making it. It is worked out in that process when the change is made, never taken from the resource's
inputs or state, so it is no part of any object's identity, causes no diff, and a ``destroy`` (which runs no
program) names whoever runs it. Outside a provider (``kumeo run``, a worker
re-creating its consumer) no auditor is active and nothing is recorded.

The audit stream is created on first use (file storage, a year of history, ``deny_delete`` and ``deny_purge``, so
records cannot be removed through the JetStream API; the generated server config also forbids the deployer to
update or delete the stream). It is ensured *before* the provider changes anything, so a server that cannot take
audit records fails the deploy before any change is made.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import contextvars
import dataclasses
import datetime
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from kumeo_iac.errors import KumeoDeployError
from kumeo_iac.jetstream import (
    AUDIT_STREAM,
    AUDIT_SUBJECTS,
    audit_stream_config,
    set_change_recorder,
)

if TYPE_CHECKING:
    from pulumi.runtime.settings import Settings

__all__ = [
    "AUDIT_STREAM",
    "AUDIT_SUBJECT",
    "AUDIT_SUBJECTS",
    "AuditRecord",
    "Auditor",
    "audit_stream_config",
    "auditing",
    "deployer",
    "is_auditing",
    "read_audit",
    "record_change",
]

AUDIT_SUBJECT = "kumeo.audit.deploy"

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
    #: Who made the change (:func:`deployer`): ``{"nats": {user, auth}, "pulumi": {project, stack, organization,
    #: user}}``; a value not known is null.
    who: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":")).encode()


class Auditor:
    """Publishes the audit records of one connection (see :func:`auditing`)."""

    def __init__(self, js: JetStreamContext, *, actor: str, server: str,
                 who: Mapping[str, Any] | None = None) -> None:
        self.js = js
        self.actor = actor
        self.server = server
        self.who = dict(who) if who is not None else deployer()
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
            who=self.who,
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
async def auditing(js: JetStreamContext, *, actor: str, server: str,
                   who: Mapping[str, Any] | None = None) -> AsyncIterator[Auditor]:
    """Record every change made through ``js`` inside the block on the audit stream; ``who`` defaults to
    :func:`deployer` without connection details (an anonymous NATS identity)."""
    auditor = Auditor(js, actor=actor, server=_without_credentials(server), who=who)
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


class _AuditRecorder:
    """Hands the changes :mod:`kumeo_iac.jetstream` makes to the auditor active in this context, if any."""

    def is_recording(self) -> bool:
        return is_auditing()

    async def record_change(self, resource: str, action: str, name: str, before: Any, after: Any) -> None:
        await record_change(resource, action, name, before, after)


# Installed on import: every provider imports this module before it changes anything; outside a provider's
# `auditing` block the recorder records nothing, so `kumeo run` and the workers are unaffected.
set_change_recorder(_AuditRecorder())


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


# -- who ---------------------------------------------------------------------------------------------------------

#: What the Python dynamic-provider host configures the SDK with when it knows nothing better (pulumi.dynamic).
_HOST_PLACEHOLDERS = {"project": "project", "stack": "stack", "organization": "organization"}
_CREDS_JWT = re.compile(r"-----BEGIN NATS USER JWT-----\s*(\S+?)\s*-+END NATS USER JWT-+")


def deployer(inputs: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Who makes a deploy's changes: ``{"nats": {"user", "auth"}, "pulumi": {"project", "stack", "organization",
    "user"}}``.

    ``nats`` is the identity the provider connects with (``inputs``: ``user``, else the name in the ``creds_file``'s
    user JWT, else ``token``, else ``anonymous``; a user or token in the URL counts). ``pulumi`` is read in the
    calling process: ``PULUMI_PROJECT``/``PULUMI_STACK``/``PULUMI_ORGANIZATION`` (CI, `kumeo up` and Pulumi's
    language hosts set them), else the SDK's project, stack and organization when a program (or Pulumi's mocks)
    set them (the engine's dynamic-provider host knows none of them), else the ``name`` of the ``Pulumi.yaml`` in
    ``PULUMI_ROOT_DIRECTORY`` or the working directory (where the engine starts providers); the user is the
    operating-system user running the deploy. Call it in the provider's calling thread: the SDK's settings are
    context variables the provider's worker thread does not see.
    """
    env = os.environ if environ is None else environ
    return {"nats": nats_identity(inputs or {}), "pulumi": {**_pulumi_context(env), "user": _os_user(env)}}


def nats_identity(inputs: Mapping[str, Any]) -> dict[str, str]:
    """``{"user", "auth"}`` of the NATS connection ``inputs`` describe; never a secret."""
    url = str(inputs.get("server_url") or "")
    userinfo = url.partition("://")[2].rpartition("@")[0] if "@" in url else ""
    url_user, has_password, _ = userinfo.partition(":")
    if inputs.get("user") or (url_user and has_password):
        return {"user": str(inputs.get("user") or url_user), "auth": "password"}
    if inputs.get("creds_file"):
        return {"user": _creds_name(str(inputs["creds_file"])), "auth": "creds"}
    if inputs.get("token") or url_user:
        return {"user": "token", "auth": "token"}  # a token names no one; the server's config says whose it is
    return {"user": "anonymous", "auth": "none"}


def _creds_name(path: str) -> str:
    """The ``name`` (else ``sub``) claim of the user JWT in a ``.creds`` file; the seed in it is never read."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"unknown (cannot read {Path(path).name})"
    match = _CREDS_JWT.search(text)
    parts = match.group(1).split(".") if match else []
    if len(parts) != 3:
        return f"unknown (no user JWT in {Path(path).name})"
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return f"unknown (unreadable user JWT in {Path(path).name})"
    if not isinstance(claims, dict):
        return f"unknown (unreadable user JWT in {Path(path).name})"
    return str(claims.get("name") or claims.get("sub") or f"unknown (unnamed user JWT in {Path(path).name})")


def _pulumi_context(env: Mapping[str, str]) -> dict[str, str | None]:
    found: dict[str, str | None] = {key: env.get(f"PULUMI_{key.upper()}") or None for key in _HOST_PLACEHOLDERS}
    settings: Settings | None = None
    try:
        from pulumi.runtime.settings import SETTINGS

        settings = SETTINGS
    except ImportError:  # pragma: no cover - the providers always ship with the SDK
        pass
    if settings is not None:
        sdk = {"project": settings.project, "stack": settings.stack, "organization": settings.organization}
        placeholders = sdk["stack"] == "stack" and sdk["organization"] == "organization"
        for key, value in sdk.items():
            if not found[key] and value and not (placeholders and value == _HOST_PLACEHOLDERS[key]):
                found[key] = str(value)
    if found["project"] is None:
        found["project"] = _project_file_name(Path(env.get("PULUMI_ROOT_DIRECTORY") or os.getcwd()))
    return found


def _project_file_name(folder: Path) -> str | None:
    for name in ("Pulumi.yaml", "Pulumi.yml"):
        try:
            text = (folder / name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        match = re.search(r"^name:\s*[\"']?([^\"'#\s]+)", text, re.MULTILINE)
        return match.group(1) if match else None
    return None


def _os_user(env: Mapping[str, str]) -> str:
    """The operating-system user, as :func:`getpass.getuser` finds it (environment first, then the user database)."""
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        if env.get(name):
            return env[name]
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError, OSError):  # no passwd entry (a bare container) or not POSIX
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


# -- summaries --------------------------------------------------------------------------------------------------


def summary(config: Any) -> dict[str, Any] | None:
    """A configuration as plain wire-shaped JSON (None stays None), without the server's own metadata keys."""
    if config is None:
        return None
    from kumeo_iac.jetstream import canonical_inputs, without_server_metadata

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

"""What the three JetStream dynamic providers share: connection inputs, sync-to-async bridging, check, diff and CRUD.

A provider object is pickled by Pulumi (dill) into the state of every resource, so it holds no connection and no
configuration: each call connects, acts and closes, running the async core of :mod:`kumeo_iac.jetstream`
on a fresh event loop in a worker thread. The thread keeps the caller's event loop (Pulumi's, or a test's)
untouched; ``asyncio.run`` in the calling thread would reset it.

Identity, replacement and adoption (docs/deploy.md, "Streams, consumers and KV buckets: identity, replacement,
adoption"):

* **Connection details are never identity.** ``server_url``, credentials and TLS files say how to reach the object,
  not which object it is: changing them (``nats://localhost:4222`` → ``nats://127.0.0.1:4222``), or not knowing
  them yet during a preview, is an in-place update that reconnects with the new details.
* **Only what JetStream cannot change in place replaces** (each kind's ``replaces_on_change``), and for the kinds
  that hold data (streams, key-value buckets) such a replacement is refused, at ``check`` (a clean preview error
  naming the object, the field and old → new) and again at ``diff``, unless the input ``allow_replace`` is true.
* **Adoption is explicit.** ``create`` of an object that already exists on the server fails, saying so, unless the
  input ``adopt`` is true; then it takes the object over, brings it to the desired configuration and logs that.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import difflib
import json
import logging
import ssl
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, TypeVar, cast

import pulumi
from nats.js import JetStreamContext
from nats.js.api import Base
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)
from pulumi.output import Unknown
from pulumi.runtime.rpc import UNKNOWN, is_rpc_secret, unwrap_rpc_secret

from kumeo_iac.errors import KumeoDeployError
from kumeo_iac.jetstream import (
    ConfigFieldError,
    Outcome,
    canonical_inputs,
    config_defaults,
    config_field_types,
    config_from_inputs,
    field_from_input,
    with_jetstream,
    without_server_metadata,
)
from kumeo_iac.jetstream import tls_context as jetstream_tls_context
from kumeo_providers._audit import _without_credentials, auditing, deployer
from kumeo_providers._types import LEGACY_DYNAMIC_TYPE

__all__ = [
    "CONNECTION_KEYS",
    "CONTROL_KEYS",
    "AlreadyExistsError",
    "ConnectionArgs",
    "JetStreamProvider",
    "JetStreamResource",
    "Live",
    "Replacement",
    "ReplacementRefusedError",
    "connection_props",
    "contains_unknown",
    "control_props",
    "jetstream_options",
    "remember_urn",
    "run_sync",
    "unwrap",
]

_log = logging.getLogger("kumeo_providers.provider")

TLS_KEYS: tuple[str, ...] = ("tls_ca_file", "tls_cert_file", "tls_key_file")
# Inputs that say where the object lives and how to log in; every resource has them, none of them is identity.
CONNECTION_KEYS: tuple[str, ...] = (
    "server_url", "user", "password", "token", "creds_file", *TLS_KEYS, "connect_timeout_s",
)
SECRET_KEYS: tuple[str, ...] = ("user", "password", "token")
# Inputs that steer the provider, not the object: changing them alone is no change.
CONTROL_KEYS: tuple[str, ...] = ("adopt", "allow_replace")
# The stack setting that sets `adopt` / `allow_replace` on a Workflow's JetStream objects (named in messages).
ADOPT_SETTING = "kumeo:adoptStreams"
ALLOW_REPLACE_SETTING = "kumeo:allowStreamReplacement"
_URL_SCHEMES = ("nats://", "tls://", "ws://", "wss://")
DEFAULT_CONNECT_TIMEOUT_S = 10.0
# How long a refusal message may spend counting the messages it would lose (the count is a courtesy).
_COUNT_TIMEOUT_S = 3.0

_R = TypeVar("_R")


class ReplacementRefusedError(KumeoDeployError):
    """A change would replace a stream or bucket (deleting its data) and the resource's ``allow_replace`` is off."""


class AlreadyExistsError(KumeoDeployError):
    """``create`` found the object already on the server and the resource's ``adopt`` is off."""


@dataclasses.dataclass(frozen=True)
class Replacement:
    """One change of an input that JetStream cannot apply in place: the object is deleted and created again."""

    key: str  # the input, as Pulumi's diff names it: "config.storage", "stream"
    old: Any
    new: Any

    def describe(self) -> str:
        """``storage from file to memory``."""
        return f"{self.key.removeprefix('config.')} from {_shown(self.old)} to {_shown(self.new)}"


@dataclasses.dataclass(frozen=True)
class Live:
    """What the server holds for one object: its configuration (the shape of ``config``) and what else we report."""

    config: dict[str, Any]
    #: Outputs besides ``config``/``live_config`` (a stream's ``created``).
    outputs: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: How many messages (stream) or stored values (bucket) it holds; None where that means nothing (consumers).
    stored: int | None = None


def run_sync(factory: Callable[[], Awaitable[_R]]) -> _R:
    """Run the coroutine ``factory()`` to completion on a new event loop in a worker thread and return its result."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="kumeo-jetstream") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()  # type: ignore[arg-type]


def unwrap(value: Any) -> Any:
    """The plain value of a property that may arrive wrapped as a Pulumi secret."""
    return unwrap_rpc_secret(value) if is_rpc_secret(value) else value


def contains_unknown(value: Any) -> bool:
    """True when a (possibly nested) input is not known yet, as during a preview.

    The engine's dynamic-provider host hands ``check`` and ``diff`` unknowns as ``pulumi.output.Unknown`` objects;
    elsewhere they arrive as the RPC sentinel string."""
    value = unwrap(value)
    if isinstance(value, Unknown):
        return True
    if isinstance(value, str):
        return value == UNKNOWN
    if isinstance(value, Mapping):
        return any(contains_unknown(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(contains_unknown(v) for v in value)
    return False


def announce(message: str, *, warning: bool = False) -> None:
    """Tell the person running Pulumi (the CLI shows a dynamic provider's log lines) and the Python log."""
    if warning:
        _log.warning("%s", message)
        pulumi.log.warn(message)
    else:
        _log.info("%s", message)
        pulumi.log.info(message)


class JetStreamProvider(ResourceProvider):
    """The CRUD cycle of one kind of JetStream object, driven by a nats-py config dataclass under ``config``."""

    # The pickled provider is a bare class reference (no state, no credentials): nothing in it to keep secret, so
    # Pulumi need not wrap it in a secret Output for every resource (the SDK's documented switch).
    serialize_as_secret_always = False

    kind: ClassVar[str]
    config_type: ClassVar[type[Base]]
    #: The object as a noun in messages ("the stream", "the bucket") and what it stores ("messages").
    noun: ClassVar[str]
    stored_noun: ClassVar[str] = "messages"
    #: True for the kinds that hold data: a replacement is refused unless the input ``allow_replace`` is true.
    guards_data: ClassVar[bool] = True
    # Top-level inputs besides `config` whose real change (both sides known) means another object: replace it.
    identity_inputs: ClassVar[tuple[str, ...]] = ()
    # What the server assumes when a field is left out (only where nats-py's dataclass default is None).
    server_defaults: ClassVar[Mapping[str, Any]] = {}
    # Top-level inputs besides the connection, the control inputs and `config`.
    extra_input_keys: ClassVar[tuple[str, ...]] = ()
    # Fields where nats-py sends 0 for "unset" and the server stores its own default instead.
    zero_means_server_default: ClassVar[frozenset[str]] = frozenset()

    # -- hooks for each kind ---------------------------------------------------------------------------------

    def replaces_on_change(self, field: str, old: Any, new: Any) -> bool:
        """True when changing ``config.<field>`` from ``old`` to ``new`` cannot be done in place."""
        raise NotImplementedError

    def check_config(self, config: Any, inputs: Mapping[str, Any]) -> list[CheckFailure]:
        """Semantic checks on a well-typed config (names, required fields, combinations)."""
        return []

    def resource_id(self, inputs: Mapping[str, Any]) -> str:
        raise NotImplementedError

    def display_name(self, inputs: Mapping[str, Any]) -> str:
        """The object's name in messages (``KUMEO_FRAUD``, ``KUMEO_FRAUD/scorer``)."""
        return self.resource_id(inputs)

    async def apply(self, js: JetStreamContext, inputs: Mapping[str, Any]) -> tuple[Live, Outcome]:
        """Bring the server to ``inputs`` (create or update); return what it then holds and what was done."""
        raise NotImplementedError

    async def fetch(self, js: JetStreamContext, inputs: Mapping[str, Any]) -> Live | None:
        """What the server holds for the object ``inputs`` names, or None when it does not exist."""
        raise NotImplementedError

    async def remove(self, js: JetStreamContext, inputs: Mapping[str, Any]) -> None:
        """Delete the object; one that is already gone is no error."""
        raise NotImplementedError

    def identity_outputs(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The outputs that name the object (``name``, ``stream``, …), computed from the inputs."""
        return {}

    def project_field(self, field: str, desired: Any, live: Mapping[str, Any]) -> Any:
        """The live value of ``config.<field>`` as it should be compared with the desired one."""
        if field in self.zero_means_server_default and desired == 0:
            return desired
        if field == "metadata":
            return without_server_metadata(live.get("metadata"))
        return live.get(field)

    async def adopt_conflicting(
        self, js: JetStreamContext, inputs: Mapping[str, Any], existing: Live, conflicts: list[Replacement]
    ) -> None:
        """``adopt`` found the object with settings JetStream cannot change in place. Data kinds refuse."""
        where = _without_credentials(str(inputs.get("server_url")))
        raise ReplacementRefusedError(
            f"{self.kind} {self.display_name(inputs)} exists on {where} with {_joined(conflicts, 'live')}; adopting "
            f"it would need a replacement, which deletes {self._stored_phrase(existing.stored)}. Make the "
            f"configuration match the live {self.noun}, or delete the {self.noun} yourself if its data may go"
        )

    # -- Pulumi's ResourceProvider ---------------------------------------------------------------------------

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures: list[CheckFailure] = []
        inputs = dict(news)
        url = unwrap(inputs.get("server_url"))
        if url is None or url == "":
            failures.append(CheckFailure("server_url", f"a {self.kind} needs server_url, e.g. 'nats://127.0.0.1:4222'"))
        elif not contains_unknown(url):
            if not isinstance(url, str):
                failures.append(CheckFailure("server_url", f"expected a string URL, got {url!r}"))
            elif "://" in url and not url.startswith(_URL_SCHEMES):
                failures.append(
                    CheckFailure("server_url", f"{url!r} is not a NATS URL; use nats://, tls://, ws:// or wss://")
                )
        timeout = unwrap(inputs.get("connect_timeout_s"))
        if timeout is not None and not contains_unknown(timeout) and (
                isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
            failures.append(CheckFailure("connect_timeout_s", f"expected a positive number, got {timeout!r}"))
        if inputs.get("tls_cert_file") and not inputs.get("tls_key_file"):
            failures.append(CheckFailure("tls_key_file", "tls_cert_file is set but tls_key_file is not; give the "
                                                         "client certificate's key too"))
        for key in CONTROL_KEYS:
            value = unwrap(inputs.get(key))
            if value is not None and not contains_unknown(value) and not isinstance(value, bool):
                failures.append(CheckFailure(key, f"expected true or false, got {value!r}"))

        raw = inputs.get("config")
        if raw is None:
            failures.append(CheckFailure("config", f"a {self.kind} needs a config ({self.config_type.__name__})"))
            return CheckResult(inputs, failures)
        if contains_unknown(raw) and not isinstance(raw, Mapping):
            return CheckResult(inputs, failures)
        if not isinstance(raw, Mapping):
            failures.append(CheckFailure("config", f"expected an object ({self.config_type.__name__}), got {raw!r}"))
            return CheckResult(inputs, failures)

        field_types = config_field_types(self.config_type)
        normalized: dict[str, Any] = {}
        any_unknown = False
        for key, value in raw.items():
            if key not in field_types:
                failures.append(CheckFailure(f"config.{key}", self._unknown_field_reason(key, field_types)))
                continue
            if value is None:
                continue
            if contains_unknown(value):
                any_unknown = True
                normalized[key] = value
                continue
            try:
                field_from_input(self.config_type, key, value, f"config.{key}")
            except ConfigFieldError as exc:
                failures.append(CheckFailure(exc.field, exc.reason))
                continue
            normalized[key] = canonical_inputs(value)
        inputs["config"] = normalized
        if not failures and not any_unknown:
            try:
                config = config_from_inputs(self.config_type, normalized)
            except ConfigFieldError as exc:
                failures.append(CheckFailure(exc.field, exc.reason))
            else:
                failures.extend(self.check_config(config, inputs))
        if olds and not failures:
            # The engine checks with the old inputs before it diffs: refusing here stops the preview with this
            # message alone (an exception from diff would reach the user wrapped in a Python traceback).
            refusal = self.refusal(olds, inputs)
            if refusal is not None:
                failures.append(CheckFailure("", refusal))
        return CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replacements = self.replacements(olds, news)
        refusal = self.refusal(olds, news, replacements)
        if refusal is not None:
            raise ReplacementRefusedError(refusal)
        return DiffResult(
            changes=bool(replacements) or self._changed(olds, news),
            replaces=[r.key for r in replacements],
            # A replacement keeps the same name on the same server, so the old one must go first.
            delete_before_replace=True,
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        inputs = self._inputs(props)
        who = deployer(inputs)  # here, in the calling thread: the SDK's settings are context variables
        existing, live = run_sync(lambda: self._with_js(inputs, lambda js: self._create(js, inputs), audit=who))
        if existing is not None:
            announce(
                f"adopted {self.kind} {self.display_name(inputs)}, which already existed on {self._where(inputs)}"
                f"{self._stored_suffix(existing.stored)}; Pulumi manages it from now on (and deletes it on destroy "
                "unless it is retained)"
            )
        return CreateResult(self.resource_id(inputs), self._outputs(inputs, inputs["config"], live))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        inputs = self._inputs(news)
        who = deployer(inputs)
        live, outcome = run_sync(lambda: self._with_js(inputs, lambda js: self.apply(js, inputs), audit=who))
        if outcome is Outcome.CREATED:
            moved = unwrap(olds.get("server_url")) != inputs.get("server_url")
            announce(
                f"{self.kind} {self.display_name(inputs)} did not exist on {self._where(inputs)}, so it was created "
                + ("(server_url changed: if it now names another NATS server, the previous one keeps its copy)"
                   if moved else "(it was deleted outside Pulumi)"),
                warning=True,
            )
        return UpdateResult(self._outputs(inputs, inputs["config"], live))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        if not unwrap(props.get("server_url")):
            raise KumeoDeployError(
                f"cannot read {self.kind} {id_!r}: its state has no server_url; "
                "give server_url (and config) when importing it"
            )
        inputs = self._inputs(props)
        live = run_sync(lambda: self._with_js(inputs, lambda js: self.fetch(js, inputs)))
        if live is None:
            return ReadResult("", {})  # gone from the server: Pulumi drops it from the state
        projected = {}
        for field, desired in inputs["config"].items():
            value = self.project_field(field, desired, live.config)
            if value is not None:
                projected[field] = value
        kept = (*CONNECTION_KEYS, *CONTROL_KEYS, *self.extra_input_keys)  # a refresh changes none of them
        read_inputs = {k: props[k] for k in kept if props.get(k) is not None}
        read_inputs["config"] = projected
        outs = self._outputs(inputs, projected, live)
        for key in CONNECTION_KEYS:  # keep secrets as Pulumi gave them
            if props.get(key) is not None:
                outs[key] = props[key]
        return ReadResult(id_, outs, read_inputs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        inputs = self._inputs(props)
        who = deployer(inputs)
        run_sync(lambda: self._with_js(inputs, lambda js: self.remove(js, inputs), audit=who))

    # -- identity and replacement ----------------------------------------------------------------------------

    def replacements(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[Replacement]:
        """The changes from ``olds`` to ``news`` that JetStream cannot apply in place.

        Connection inputs are never among them, and neither is a value not known yet (a preview): only a change
        between two known values replaces.
        """
        out: list[Replacement] = []
        for key in self.identity_inputs:
            old, new = unwrap(olds.get(key)), unwrap(news.get(key))
            if old is not None and new is not None and not contains_unknown(new) and old != new:
                out.append(Replacement(key, old, new))
        raw = news.get("config")
        if not isinstance(raw, Mapping):
            return out
        old_config, new_config = self._normalize(olds.get("config")), self._normalize(raw)
        for field in sorted(set(old_config) | set(new_config)):
            old, new = self._effective(old_config, field), self._effective(new_config, field)
            if old == new or contains_unknown(new):
                continue
            if self.replaces_on_change(field, old, new):
                out.append(Replacement(f"config.{field}", old, new))
        return out

    def refusal(
        self, olds: Mapping[str, Any], news: Mapping[str, Any], replacements: list[Replacement] | None = None
    ) -> str | None:
        """Why going from ``olds`` to ``news`` is refused (a data-holding object would be replaced), or None."""
        if not self.guards_data:
            return None
        allow = unwrap(news.get("allow_replace"))
        if allow is True or contains_unknown(allow):
            return None
        if replacements is None:
            replacements = self.replacements(olds, news)
        if not replacements:
            return None
        stored = self._count_stored(olds, news)
        return (
            f"{self.kind} {self.display_name(olds)}: changing {_joined(replacements)} replaces the {self.noun} and "
            f"deletes {self._stored_phrase(stored)}; JetStream cannot make this change in place. Set allow_replace "
            f"({ALLOW_REPLACE_SETTING}) to allow it, or keep the old value"
        )

    # -- internals -------------------------------------------------------------------------------------------

    async def _create(self, js: JetStreamContext, inputs: Mapping[str, Any]) -> tuple[Live | None, Live]:
        existing = await self.fetch(js, inputs)
        if existing is not None:
            if inputs.get("adopt") is not True:
                raise AlreadyExistsError(self._exists_message(inputs, existing))
            conflicts = self._live_conflicts(existing, inputs)
            if conflicts:
                await self.adopt_conflicting(js, inputs, existing, conflicts)
        live, _outcome = await self.apply(js, inputs)
        return existing, live

    def _live_conflicts(self, existing: Live, inputs: Mapping[str, Any]) -> list[Replacement]:
        """What the live object holds that the desired configuration would have to replace it for."""
        desired = dict(inputs["config"])
        live = {f: self.project_field(f, v, existing.config) for f, v in desired.items()}
        identity = {k: inputs.get(k) for k in self.identity_inputs}
        return self.replacements({**identity, "config": live}, {**identity, "config": desired})

    def _exists_message(self, inputs: Mapping[str, Any], existing: Live) -> str:
        return (
            f"{self.kind} {self.display_name(inputs)} already exists on {self._where(inputs)}"
            f"{self._stored_suffix(existing.stored)} and Pulumi does not manage it yet; to manage it with Pulumi "
            f"set adopt=True ({ADOPT_SETTING}), which takes it over as it is and brings it to this configuration, "
            f"or import it with ResourceOptions(import_={self.resource_id(inputs)!r}); to start afresh, delete it "
            "from the server first"
        )

    def _changed(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> bool:
        """True when anything but the control inputs differs (or may differ: an unknown value)."""
        for key in (*CONNECTION_KEYS, *self.extra_input_keys):
            old, new = unwrap(olds.get(key)), unwrap(news.get(key))
            if key == "connect_timeout_s":
                old = DEFAULT_CONNECT_TIMEOUT_S if old is None else old
                new = DEFAULT_CONNECT_TIMEOUT_S if new is None else new
            if old != new or contains_unknown(new):
                return True
        raw = news.get("config")
        if not isinstance(raw, Mapping):
            return True  # unknown (a preview) or malformed: check reports the latter
        old_config, new_config = self._normalize(olds.get("config")), self._normalize(raw)
        for field in set(old_config) | set(new_config):
            new = self._effective(new_config, field)
            if contains_unknown(new) or self._effective(old_config, field) != new:
                return True
        return False

    def _count_stored(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> int | None:
        """How much the object named by ``olds`` holds, asked of the server with the newest known connection
        details; None when that cannot be learnt quickly (the count only makes a refusal more concrete)."""
        for source in (news, olds):
            connection = {k: unwrap(source.get(k)) for k in CONNECTION_KEYS}
            if not connection["server_url"] or contains_unknown(connection):
                continue
            probe = {**{k: unwrap(olds.get(k)) for k in self.extra_input_keys}, **connection,
                     "config": self._normalize(olds.get("config"))}
            probe["connect_timeout_s"] = min(float(connection["connect_timeout_s"] or _COUNT_TIMEOUT_S),
                                             _COUNT_TIMEOUT_S)
            try:
                live = self._fetch_now(probe)
            except Exception as exc:  # noqa: BLE001 - unreachable, refused, malformed: say "every message" instead
                _log.debug("could not count what %s %s holds: %r", self.kind, self.display_name(olds), exc)
                continue
            return None if live is None else live.stored
        return None

    def _fetch_now(self, inputs: Mapping[str, Any]) -> Live | None:
        return run_sync(lambda: self._with_js(inputs, lambda js: self.fetch(js, inputs)))

    def _stored_phrase(self, stored: int | None) -> str:
        if stored is None:
            return f"every one of its stored {self.stored_noun}"
        return f"its {stored} stored {self.stored_noun if stored != 1 else self.stored_noun.removesuffix('s')}"

    def _stored_suffix(self, stored: int | None) -> str:
        return "" if stored is None else f" ({self._stored_phrase(stored).removeprefix('its ')})"

    @staticmethod
    def _where(inputs: Mapping[str, Any]) -> str:
        return _without_credentials(str(inputs.get("server_url")))

    def _inputs(self, props: Mapping[str, Any]) -> dict[str, Any]:
        """Plain, typed inputs: secrets unwrapped, config normalized (mock floats back to ints)."""
        inputs = {k: unwrap(v) for k, v in props.items() if k != "__provider"}
        raw = inputs.get("config")
        if not isinstance(raw, Mapping):
            raise KumeoDeployError(f"a {self.kind} needs a config ({self.config_type.__name__}), got {raw!r}")
        config_from_inputs(self.config_type, raw)  # fails early, naming the field, on a malformed config
        inputs["config"] = canonical_inputs(dict(raw))
        return inputs

    async def _with_js(
        self, inputs: Mapping[str, Any], action: Callable[[JetStreamContext], Awaitable[_R]], *,
        audit: Mapping[str, Any] | None = None,
    ) -> _R:
        """Connect with ``inputs``' connection details and run ``action``; with ``audit`` (who acts, see
        :func:`~kumeo_providers._audit.deployer`), every change it makes is recorded on KUMEO_AUDIT."""
        url = inputs.get("server_url")
        if not url:
            raise KumeoDeployError(f"a {self.kind} needs server_url, e.g. 'nats://127.0.0.1:4222'")
        timeout = inputs.get("connect_timeout_s") or DEFAULT_CONNECT_TIMEOUT_S
        options: dict[str, Any] = {}
        tls = tls_context(inputs)
        if tls is not None:
            options["tls"] = tls

        async def audited(js: JetStreamContext) -> _R:
            async with auditing(js, actor=f"pulumi:{self.kind}", server=str(url), who=audit):
                return await action(js)

        return await with_jetstream(
            url,
            audited if audit is not None else action,
            timeout_s=float(timeout),
            user=inputs.get("user"),
            password=inputs.get("password"),
            token=inputs.get("token"),
            creds_file=inputs.get("creds_file"),
            **options,
        )

    def _outputs(self, inputs: Mapping[str, Any], config: Mapping[str, Any], live: Live) -> dict[str, Any]:
        outs = {k: inputs[k] for k in (*CONNECTION_KEYS, *self.extra_input_keys) if inputs.get(k) is not None}
        outs["config"] = dict(config)
        live_config = dict(live.config)
        if "metadata" in live_config:
            live_config["metadata"] = without_server_metadata(live_config["metadata"])
        outs["live_config"] = live_config
        outs.update(live.outputs)
        outs.update(self.identity_outputs(inputs))
        return outs

    def _normalize(self, raw: Any) -> dict[str, Any]:
        """The config in canonical wire shape for comparison (mock floats back to ints, None dropped)."""
        if not isinstance(raw, Mapping):
            return {}
        normalized: dict[str, Any] = canonical_inputs(dict(raw))
        return normalized

    def _effective(self, config: Mapping[str, Any], field: str) -> Any:
        value = config.get(field)
        if value is None:
            value = config_defaults(self.config_type).get(field)
        if value is None:
            value = self.server_defaults.get(field)
        if field == "metadata" and isinstance(value, Mapping):
            value = without_server_metadata(value) or None
        return value

    def _unknown_field_reason(self, key: str, field_types: Mapping[str, Any]) -> str:
        reason = f"{self.config_type.__name__} has no field {key!r}"
        close = difflib.get_close_matches(key, list(field_types), n=1)
        if close:
            reason += f"; did you mean {close[0]!r}?"
        return reason


def tls_context(inputs: Mapping[str, Any]) -> ssl.SSLContext | None:
    """The TLS context the inputs' ``tls_ca_file``/``tls_cert_file``/``tls_key_file`` describe, or None."""
    ca, cert, key = (inputs.get(k) for k in TLS_KEYS)
    return jetstream_tls_context(ca, cert, key, server=_without_credentials(str(inputs.get("server_url"))))


def _shown(value: Any) -> str:
    """A config value as people write it: strings bare, booleans lower-case, None as "unset", the rest as JSON."""
    if value is None:
        return "unset"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _joined(replacements: list[Replacement], side: str = "change") -> str:
    """``storage from file to memory and retention from limits to workqueue`` (or, for ``live``, the live side:
    ``storage memory (desired: file)``)."""
    if side == "live":
        parts = [f"{r.key.removeprefix('config.')} {_shown(r.old)} (desired: {_shown(r.new)})" for r in replacements]
    else:
        parts = [r.describe() for r in replacements]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def name_failures(value: Any, field: str, kind: str, forbidden: str = ">*. /\\\t\r\n") -> list[CheckFailure]:
    """Failures for a stream/consumer/bucket name: required, no wildcards, dots, slashes or whitespace."""
    if value is None or value == "":
        return [CheckFailure(field, f"a {kind} needs a name; set {field}")]
    if contains_unknown(value):
        return []
    if not isinstance(value, str):
        return [CheckFailure(field, f"expected a string, got {value!r}")]
    bad = sorted({c for c in value if c in forbidden})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        return [CheckFailure(field, f"{kind} name {value!r} may not contain {shown}")]
    return []


@dataclasses.dataclass(kw_only=True)
class ConnectionArgs:
    """The NATS server a JetStream resource is applied to, and how to log in; shared by every resource's args.

    None of these is part of the object's identity: changing them updates the resource in place (the provider
    reconnects with the new details), it never replaces the stream, consumer or bucket.
    """

    server_url: pulumi.Input[str]
    user: pulumi.Input[str] | None = None
    password: pulumi.Input[str] | None = None
    token: pulumi.Input[str] | None = None
    creds_file: pulumi.Input[str] | None = None
    #: TLS to NATS: the CA that signed the server's certificate, and the client certificate and key if it asks.
    tls_ca_file: pulumi.Input[str] | None = None
    tls_cert_file: pulumi.Input[str] | None = None
    tls_key_file: pulumi.Input[str] | None = None
    connect_timeout_s: pulumi.Input[float] | None = None

    @classmethod
    def from_mapping(cls, args: Mapping[str, Any]) -> Any:
        return cls(**dict(args))


def connection_props(args: ConnectionArgs, props: dict[str, Any]) -> dict[str, Any]:
    """Add the connection inputs of an args object to ``props``, wrapping credentials as Pulumi secrets.

    Inputs left unset are left out rather than sent as nulls: each property costs the SDK an Output to register
    and resolve, and a workflow registers one consumer per agent (the provider reads them all with ``get``)."""
    props["server_url"] = args.server_url
    for key in SECRET_KEYS:
        value = getattr(args, key)
        if value is not None:
            props[key] = pulumi.Output.secret(value)
    for key in ("creds_file", *TLS_KEYS, "connect_timeout_s"):
        if getattr(args, key) is not None:
            props[key] = getattr(args, key)
    return props


def control_props(args: object) -> dict[str, Any]:
    """The control inputs (``adopt``, ``allow_replace``) ``args`` turns on. One left off is left out, for the same
    reason as an unset connection input: the provider reads a missing one as false, and changing one alone is no
    change, so a state that recorded ``false`` sees none."""
    values = {key: getattr(args, key, None) for key in CONTROL_KEYS}
    return {key: value for key, value in values.items() if value is not None and value is not False}


class JetStreamResource(Resource):
    """What every JetStream resource outputs: where it was applied, the desired and the live configuration.

    Outputs are declared as getters, as Pulumi's generated SDKs declare them, rather than as class annotations: the
    SDK reads a class's annotations with ``typing.get_type_hints`` again for every resource it registers, but caches
    what it learns from getters once per class (a workflow registers one consumer per agent).
    """

    @property
    @pulumi.getter(name="server_url")
    def server_url(self) -> pulumi.Output[str]:
        """The NATS server the object was applied to."""
        return cast("pulumi.Output[str]", pulumi.get(self, "server_url"))

    @property
    @pulumi.getter
    def config(self) -> pulumi.Output[dict[str, Any]]:
        """The desired configuration (the nats-py config dataclass as a dict)."""
        return cast("pulumi.Output[dict[str, Any]]", pulumi.get(self, "config"))

    @property
    @pulumi.getter(name="live_config")
    def live_config(self) -> pulumi.Output[dict[str, Any]]:
        """The configuration the server reports, as of the last create, update or refresh."""
        return cast("pulumi.Output[dict[str, Any]]", pulumi.get(self, "live_config"))


def jetstream_options(resource_name: str, opts: pulumi.ResourceOptions | None) -> pulumi.ResourceOptions:
    """``opts`` plus what every JetStream resource needs: the credentials among the secret outputs (the state never
    shows them in clear), and an alias to the URN these resources had before they had their own type."""
    return pulumi.ResourceOptions.merge(
        opts,
        pulumi.ResourceOptions(
            additional_secret_outputs=list(SECRET_KEYS),
            aliases=[legacy_type_alias(resource_name, opts.parent if opts else None)],
        ),
    )


def legacy_type_alias(resource_name: str, parent: pulumi.Resource | None) -> pulumi.Input[str]:
    """The URN the resource had as ``pulumi-python:dynamic:Resource`` (same name, same parent).

    Written as the URN itself rather than ``Alias(type_=…)``: the SDK turns an alias spec into several Outputs per
    resource (about a quarter of what registering a consumer costs), a URN into one. The URN is built as the engine
    builds it: the parent's qualified type, ``$``, the type, ``::``, the name; a top-level resource has no parent
    type (the stack's is never part of a URN). A parent whose URN is :func:`remember_urn`-ed gives a plain string;
    any other parent an Output of its URN, which makes every child wait a turn for the parent's registration.
    """
    if parent is None or _is_stack(parent):
        return _top_level_urn(LEGACY_DYNAMIC_TYPE, resource_name)
    known = _URNS_KNOWN_NOW.get(parent)
    if known is not None:
        return _child_urn(known, LEGACY_DYNAMIC_TYPE, resource_name)
    return parent.urn.apply(lambda urn: _child_urn(urn, LEGACY_DYNAMIC_TYPE, resource_name))


# The URNs resources will get, known when they are constructed (see remember_urn).
_URNS_KNOWN_NOW: weakref.WeakKeyDictionary[pulumi.Resource, str] = weakref.WeakKeyDictionary()


def remember_urn(resource: pulumi.Resource, type_token: str, name: str, parent: pulumi.Resource | None) -> str | None:
    """Note the URN the engine will give ``resource`` (of ``type_token``, named ``name``, under ``parent``) when it
    is known without asking: at the top of the stack, or under a resource whose URN is noted. JetStream resources
    created under it then alias their old type with a string, not an Output. Returns the URN, or None when the
    parent's URN is not known here (then nothing is noted and the aliases wait for the parent's URN as before).
    """
    if parent is None or _is_stack(parent):
        urn = _top_level_urn(type_token, name)
    elif parent in _URNS_KNOWN_NOW:
        urn = _child_urn(_URNS_KNOWN_NOW[parent], type_token, name)
    else:
        return None
    _URNS_KNOWN_NOW[resource] = urn
    return urn


def _is_stack(resource: pulumi.Resource) -> bool:
    return getattr(resource, "_type", None) == "pulumi:pulumi:Stack"


def _top_level_urn(type_token: str, name: str) -> str:
    """The URN of a resource at the top of the stack: no parent type (the stack's is never part of a URN)."""
    return f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}::{type_token}::{name}"


def _child_urn(parent_urn: str, type_token: str, name: str) -> str:
    """A child's URN from its parent's: the parent's qualified type, ``$``, the child's type, ``::``, its name."""
    return f"{parent_urn.rsplit('::', 1)[0]}${type_token}::{name}"

"""What the three JetStream dynamic providers share: connection inputs, sync-to-async bridging, check and diff.

A provider object is pickled by Pulumi (dill) into the state of every resource, so it holds no connection and no
configuration: each call connects, acts and closes, running the async core of :mod:`kumeo_providers._jetstream`
on a fresh event loop in a worker thread. The thread keeps the caller's event loop (Pulumi's, or a test's)
untouched; ``asyncio.run`` in the calling thread would reset it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import difflib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, TypeVar

import pulumi
from nats.js import JetStreamContext
from nats.js.api import Base
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)
from pulumi.runtime.rpc import UNKNOWN, is_rpc_secret, unwrap_rpc_secret

from kumeo_iac.errors import KumeoDeployError
from kumeo_providers._audit import auditing
from kumeo_providers._jetstream import (
    ConfigFieldError,
    canonical_inputs,
    config_defaults,
    config_field_types,
    config_from_inputs,
    field_from_input,
    with_jetstream,
    without_server_metadata,
)

# Inputs that say where the resource lives and how to log in; every resource has them.
CONNECTION_KEYS: tuple[str, ...] = ("server_url", "user", "password", "token", "creds_file", "connect_timeout_s")
SECRET_KEYS: tuple[str, ...] = ("user", "password", "token")
_URL_SCHEMES = ("nats://", "tls://", "ws://", "wss://")
DEFAULT_CONNECT_TIMEOUT_S = 10.0

_R = TypeVar("_R")


def run_sync(factory: Callable[[], Awaitable[_R]]) -> _R:
    """Run the coroutine ``factory()`` to completion on a new event loop in a worker thread and return its result."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="kumeo-jetstream") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()  # type: ignore[arg-type]


def unwrap(value: Any) -> Any:
    """The plain value of a property that may arrive wrapped as a Pulumi secret."""
    return unwrap_rpc_secret(value) if is_rpc_secret(value) else value


def contains_unknown(value: Any) -> bool:
    """True when a (possibly nested) input is not known yet, as during a preview."""
    if isinstance(value, str):
        return value == UNKNOWN
    if isinstance(value, Mapping):
        return any(contains_unknown(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(contains_unknown(v) for v in value)
    return False


class JetStreamProvider(ResourceProvider):
    """The CRUD cycle of one kind of JetStream object, driven by a nats-py config dataclass under ``config``."""

    kind: ClassVar[str]
    config_type: ClassVar[type[Base]]
    # Top-level inputs whose change means a different object: replace it.
    identity_keys: ClassVar[tuple[str, ...]] = ("server_url",)
    # What the server assumes when a field is left out (only where nats-py's dataclass default is None).
    server_defaults: ClassVar[Mapping[str, Any]] = {}
    # Top-level inputs besides the connection and `config`.
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

    async def apply(self, js: JetStreamContext, inputs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Bring the server to ``inputs``; return (identifying outputs, the live config as a plain dict)."""
        raise NotImplementedError

    async def fetch(self, js: JetStreamContext, inputs: Mapping[str, Any]) -> dict[str, Any] | None:
        """The live config as a plain dict (same shape as ``config``), or None when the object is gone."""
        raise NotImplementedError

    async def remove(self, js: JetStreamContext, inputs: Mapping[str, Any]) -> None:
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

    # -- Pulumi's ResourceProvider ---------------------------------------------------------------------------

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
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
        if timeout is not None and not contains_unknown(timeout):
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
                failures.append(CheckFailure("connect_timeout_s", f"expected a positive number, got {timeout!r}"))

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
        return CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces: list[str] = []
        changed = False
        for key in (*CONNECTION_KEYS, *self.extra_input_keys):
            old, new = unwrap(olds.get(key)), unwrap(news.get(key))
            if key == "connect_timeout_s":
                old = DEFAULT_CONNECT_TIMEOUT_S if old is None else old
                new = DEFAULT_CONNECT_TIMEOUT_S if new is None else new
            if old != new or contains_unknown(new):
                changed = True
                if key in self.identity_keys:
                    replaces.append(key)
        old_config = self._normalize(olds.get("config"))
        new_config = self._normalize(news.get("config"))
        for field in sorted(set(old_config) | set(new_config)):
            old, new = self._effective(old_config, field), self._effective(new_config, field)
            if old == new and not contains_unknown(new):
                continue
            changed = True
            if contains_unknown(new) or self.replaces_on_change(field, old, new):
                replaces.append(f"config.{field}")
        return DiffResult(
            changes=changed,
            replaces=replaces,
            stables=list(self.identity_keys),
            # A replacement keeps the same name on the same server, so the old one must go first.
            delete_before_replace=True,
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        inputs = self._inputs(props)
        identity, live = run_sync(lambda: self._with_js(inputs, lambda js: self.apply(js, inputs), audit=True))
        return CreateResult(self.resource_id(inputs), self._outputs(inputs, inputs["config"], live, identity))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        inputs = self._inputs(news)
        identity, live = run_sync(lambda: self._with_js(inputs, lambda js: self.apply(js, inputs), audit=True))
        return UpdateResult(self._outputs(inputs, inputs["config"], live, identity))

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
            value = self.project_field(field, desired, live)
            if value is not None:
                projected[field] = value
        read_inputs = {k: props[k] for k in (*CONNECTION_KEYS, *self.extra_input_keys) if props.get(k) is not None}
        read_inputs["config"] = projected
        outs = self._outputs(inputs, projected, live, self.identity_outputs(inputs))
        for key in CONNECTION_KEYS:  # keep secrets as Pulumi gave them
            if props.get(key) is not None:
                outs[key] = props[key]
        return ReadResult(id_, outs, read_inputs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        inputs = self._inputs(props)
        run_sync(lambda: self._with_js(inputs, lambda js: self.remove(js, inputs), audit=True))

    # -- internals -------------------------------------------------------------------------------------------

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
        self, inputs: Mapping[str, Any], action: Callable[[JetStreamContext], Awaitable[_R]], *, audit: bool = False
    ) -> _R:
        """Connect and run ``action``; with ``audit``, every change it makes is recorded on KUMEO_AUDIT."""
        url = inputs.get("server_url")
        if not url:
            raise KumeoDeployError(f"a {self.kind} needs server_url, e.g. 'nats://127.0.0.1:4222'")
        timeout = inputs.get("connect_timeout_s") or DEFAULT_CONNECT_TIMEOUT_S

        async def audited(js: JetStreamContext) -> _R:
            async with auditing(js, actor=f"pulumi:{self.kind}", server=str(url)):
                return await action(js)

        return await with_jetstream(
            url,
            audited if audit else action,
            timeout_s=float(timeout),
            user=inputs.get("user"),
            password=inputs.get("password"),
            token=inputs.get("token"),
            creds_file=inputs.get("creds_file"),
        )

    def _outputs(
        self,
        inputs: Mapping[str, Any],
        config: Mapping[str, Any],
        live: Mapping[str, Any],
        identity: Mapping[str, Any],
    ) -> dict[str, Any]:
        outs = {k: inputs[k] for k in (*CONNECTION_KEYS, *self.extra_input_keys) if inputs.get(k) is not None}
        outs["config"] = dict(config)
        live_config = dict(live)
        if "metadata" in live_config:
            live_config["metadata"] = without_server_metadata(live_config["metadata"])
        outs["live_config"] = live_config
        outs.update(identity)
        return outs

    def _normalize(self, raw: Any) -> dict[str, Any]:
        """The config in canonical wire shape for comparison (mock floats back to ints, None dropped)."""
        if not isinstance(raw, Mapping):
            return {}
        return canonical_inputs(dict(raw))

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


def name_failures(value: Any, field: str, kind: str, forbidden: str = ">*. /\\\t\r\n") -> list[CheckFailure]:
    """Failures for a stream/consumer/bucket name: required, no wildcards, dots, slashes or whitespace."""
    if value is None or value == "":
        return [CheckFailure(field, f"a {kind} needs a name; set {field}")]
    if isinstance(value, str) and contains_unknown(value):
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
    """The NATS server a JetStream resource is applied to, and how to log in; shared by every resource's args."""

    server_url: pulumi.Input[str]
    user: pulumi.Input[str] | None = None
    password: pulumi.Input[str] | None = None
    token: pulumi.Input[str] | None = None
    creds_file: pulumi.Input[str] | None = None
    connect_timeout_s: pulumi.Input[float] | None = None

    @classmethod
    def from_mapping(cls, args: Mapping[str, Any]) -> Any:
        return cls(**dict(args))


def connection_props(args: ConnectionArgs, props: dict[str, Any]) -> dict[str, Any]:
    """Add the connection inputs of an args object to ``props``, wrapping credentials as Pulumi secrets."""
    props["server_url"] = args.server_url
    for key in SECRET_KEYS:
        value = getattr(args, key)
        props[key] = pulumi.Output.secret(value) if value is not None else None
    props["creds_file"] = args.creds_file
    props["connect_timeout_s"] = args.connect_timeout_s
    return props


def with_secret_outputs(opts: pulumi.ResourceOptions | None) -> pulumi.ResourceOptions:
    """``opts`` plus the credentials among the secret outputs, so the state never shows them in clear."""
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=list(SECRET_KEYS)))

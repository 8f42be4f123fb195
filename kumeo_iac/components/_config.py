"""Stack configuration under the ``kumeo:`` namespace (``pulumi config set kumeo:namespace prod``).

Every key is declared once, in :data:`CONFIG_KEYS` (name, type, meaning, default, secret or not). That one
declaration drives the check :func:`read_stack_config` runs in every Pulumi program (an unknown key or a value of
the wrong type fails the preview with one line: ``unknown stack config key kumeo:natsURL; did you mean
kumeo:natsUrl?``), the check of ``kumeo up --config KEY=VALUE``, the ``config:`` block ``kumeo new`` writes into
Pulumi.yaml and the table in docs/deploy.md (:func:`main` rewrites it).

Pulumi itself imports nothing from here until a program runs: the declarations are plain data.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kumeo_iac.errors import KumeoDeployError

if TYPE_CHECKING:
    import pulumi

__all__ = [
    "CONFIG_KEYS",
    "CONFIG_NAMESPACE",
    "SECRET_CONFIG_KEYS",
    "ConfigKey",
    "StackConfig",
    "StackConfigError",
    "check_config_pairs",
    "check_stack_config",
    "config_key",
    "config_reference_markdown",
    "pulumi_project_config",
    "read_stack_config",
]

CONFIG_NAMESPACE = "kumeo"

ConfigType = Literal["string", "boolean", "object"]

#: What Pulumi's ``Config.get_bool`` accepts (a stack file holds strings; ``--type bool`` and paths hold booleans).
_TRUE = ("true", "True")
_FALSE = ("false", "False")


# -- value checks (a message saying what is wrong, or None) ---------------------------------------------------

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NATS_SCHEMES = ("nats", "tls", "ws", "wss")


def _namespace(value: str) -> str | None:
    if len(value) <= 63 and _DNS_LABEL.fullmatch(value):
        return None
    return "must be a Kubernetes namespace name: lower-case letters, digits and '-', at most 63 characters"


def _secret_name(value: str) -> str | None:
    if len(value) <= 253 and _DNS_SUBDOMAIN.fullmatch(value):
        return None
    return "must be the name of a Kubernetes Secret: lower-case letters, digits, '-' and '.'"


def _nats_urls(value: str) -> str | None:
    """``nats://host:4222``, ``tls://…``, ``ws(s)://…`` or a bare ``host:port``; several separated by commas."""
    from urllib.parse import urlsplit

    for url in (u.strip() for u in value.split(",")):
        if "://" not in url:
            if url and not any(c.isspace() for c in url) and "/" not in url:
                continue
        else:
            parts = urlsplit(url)
            if parts.scheme in _NATS_SCHEMES and parts.hostname:
                continue
        return (f"must be a NATS URL such as nats://nats.nats.svc:4222 (schemes {', '.join(_NATS_SCHEMES)}; "
                f"several separated by commas), not {url!r}")
    return None


def _image_registry(value: str) -> str | None:
    if value and "://" not in value and not any(c.isspace() for c in value):
        return None
    return "must be a registry prefix such as ghcr.io/acme (no scheme, no spaces)"


def _secret_object_entry(name: str, value: Any) -> str | None:
    if not _ENV_NAME.fullmatch(name):
        return f"entry {name!r} is not an environment variable name (letters, digits and '_')"
    if value is None or isinstance(value, (dict, list)):
        return f"entry {name!r} must be a string"
    return None


# -- the declaration ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ConfigKey:
    """One ``kumeo:`` stack config key."""

    #: The key under ``kumeo:``, as written in ``pulumi config set kumeo:<name>``.
    name: str
    type: ConfigType
    #: What it does, one or two sentences (docs, Pulumi.yaml description).
    doc: str
    #: The value an unset key means, when that is a constant (``None``: see ``default_doc``).
    default: bool | str | None = None
    #: The default in words, when it is not a constant (``"the workflow's deployment.namespace, else its slug"``).
    default_doc: str | None = None
    #: Set it with ``pulumi config set --secret``; a plain-text value gets a warning.
    secret: bool = False
    #: The :class:`StackConfig` field; ``None`` for the API keys, which go to ``StackConfig.secrets``.
    field: str | None = None
    #: API keys: the environment variable agents read the value from.
    env: str | None = None
    #: A further check of a string value: a message saying what is wrong, or ``None``.
    check: Callable[[str], str | None] | None = None

    @property
    def key(self) -> str:
        """The full key, ``kumeo:<name>``."""
        return f"{CONFIG_NAMESPACE}:{self.name}"

    @property
    def type_doc(self) -> str:
        return f"secret {self.type}" if self.secret else self.type

    @property
    def default_text(self) -> str:
        if self.default_doc is not None:
            return self.default_doc
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        return "unset" if self.default is None else str(self.default)


def _api_key(name: str, env: str, vendor: str) -> ConfigKey:
    return ConfigKey(name, "string", f"{vendor} API key, given to agents as `{env}`.", secret=True, env=env,
                     default_doc="none")


#: Every ``kumeo:`` key Kumeo reads, in the order the docs list them.
CONFIG_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey("namespace", "string", "Kubernetes namespace of every object of the workflow.",
              default_doc="the workflow's `deployment.namespace`, else its slug", field="namespace",
              check=_namespace),
    ConfigKey("natsUrl", "string", "NATS URL the agents connect to inside the cluster.",
              default_doc="the workflow's `nats:` block, else `nats://nats:4222`", field="nats_url",
              check=_nats_urls),
    ConfigKey("jetstreamUrl", "string",
              "NATS URL the machine running Pulumi reaches to create streams, consumers and KV buckets.",
              default_doc="`kumeo:natsUrl`", field="jetstream_url", check=_nats_urls),
    ConfigKey("natsToken", "string", "NATS auth token for that connection.", default_doc="none", secret=True,
              field="nats_token"),
    ConfigKey("natsAuthSeed", "string",
              "Seed every NATS password is derived from; when set, each agent connects as its own NATS user and "
              "the deployer as `kumeo-deployer` (docs/security.md).", default_doc="none", secret=True,
              field="nats_auth_seed"),
    ConfigKey("natsTlsSecret", "string", "Kubernetes Secret (`ca.crt`, `tls.crt`, `tls.key`) agents use for TLS "
              "to NATS.", default_doc="none (no TLS)", field="nats_tls_secret", check=_secret_name),
    ConfigKey("imageRegistry", "string", "Registry prefix of the agent images.", default_doc="`ghcr.io/kumeo`",
              field="image_registry", check=_image_registry),
    ConfigKey("keda", "boolean", "Scale agents on consumer lag with KEDA ScaledObjects instead of HPAs.",
              default=False, field="keda"),
    ConfigKey("createNamespace", "boolean", "Create the namespace as a child of the Workflow.", default=False,
              field="create_namespace"),
    ConfigKey("manageJetStream", "boolean", "Create the streams, consumers and KV buckets.", default=True,
              field="manage_jetstream"),
    ConfigKey("buildImages", "boolean", "Build one image per image class and pin Deployments to it.",
              default=False, field="build_images"),
    ConfigKey("pushImages", "boolean", "Push the images `kumeo:buildImages` builds.", default=False,
              field="push_images"),
    ConfigKey("retainStreams", "boolean",
              "Keep streams and KV buckets on the server when the stack is destroyed or they leave the program "
              "(Pulumi's `retainOnDelete`); false: `pulumi destroy` deletes them and their messages.",
              default=False, field="retain_streams"),
    ConfigKey("allowStreamReplacement", "boolean",
              "Allow a change JetStream cannot apply in place to a stream or KV bucket (it is deleted and "
              "created again, losing its messages); false: such a change fails the preview.",
              default=False, field="allow_stream_replacement"),
    ConfigKey("adoptStreams", "boolean",
              "Take over streams and KV buckets that already exist on the server; false: an existing one fails "
              "the update.", default=False, field="adopt_streams"),
    ConfigKey("awaitKubernetes", "boolean",
              "Wait for Deployments to become ready (Pulumi's await logic, the default); false: an update returns "
              "once the objects are accepted (set it where pods cannot start, e.g. rendering YAML to a directory).",
              default=True, field="await_kubernetes"),
    _api_key("openaiApiKey", "OPENAI_API_KEY", "OpenAI"),
    _api_key("anthropicApiKey", "ANTHROPIC_API_KEY", "Anthropic"),
    _api_key("ollamaApiKey", "OLLAMA_API_KEY", "Ollama"),
    _api_key("huggingfaceToken", "HF_TOKEN", "Hugging Face"),
    ConfigKey("secrets", "object",
              "Any other secret environment variables of the agents, by name "
              "(`pulumi config set --secret --path 'kumeo:secrets.VENDOR_TOKEN' …`).", default_doc="none",
              secret=True, field="secrets"),
)

_BY_NAME: dict[str, ConfigKey] = {k.name: k for k in CONFIG_KEYS}

#: Well-known secret config keys → the environment variable agents read them from.
SECRET_CONFIG_KEYS: dict[str, str] = {k.name: k.env for k in CONFIG_KEYS if k.env}


def config_key(name: str) -> ConfigKey:
    """The declaration of ``name`` (with or without ``kumeo:``); ``KeyError`` if there is none."""
    return _BY_NAME[name.removeprefix(f"{CONFIG_NAMESPACE}:")]


# -- the values ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class StackConfig:
    """The ``kumeo:`` keys of the current stack (see :data:`CONFIG_KEYS`).

    ``None`` means unset: the component then applies the declared default (or what the workflow file says).
    """

    namespace: str | None = None
    nats_url: str | None = None
    jetstream_url: str | None = None
    image_registry: str | None = None
    keda: bool | None = None
    create_namespace: bool | None = None
    manage_jetstream: bool | None = None
    #: Build one image per image class and pin Deployments to it (``kumeo:buildImages``).
    build_images: bool | None = None
    #: Push the images the component builds (``kumeo:pushImages``).
    push_images: bool | None = None
    #: A NATS auth token for creating streams (``pulumi config set --secret kumeo:natsToken …``).
    nats_token: pulumi.Output[str] | None = None
    #: Environment variable → secret value: the well-known API keys and the entries of ``kumeo:secrets``.
    secrets: dict[str, pulumi.Output[str]] = dataclasses.field(default_factory=dict)
    #: The seed every NATS password is derived from (``pulumi config set --secret kumeo:natsAuthSeed …``); when
    #: set, each agent connects as its own NATS user and the deployer as ``kumeo-deployer``.
    nats_auth_seed: pulumi.Output[str] | None = None
    #: The Secret (ca.crt, tls.crt, tls.key) agents use for TLS to NATS.
    nats_tls_secret: str | None = None
    #: Keep streams and KV buckets when they are deleted from the stack (``retain_on_delete``).
    retain_streams: bool = False
    #: A stream or KV bucket change JetStream cannot apply in place may replace it (else the preview fails).
    allow_stream_replacement: bool = False
    #: Take over streams and KV buckets that already exist on the server instead of failing.
    adopt_streams: bool = False
    #: Wait for Deployments to become ready.
    await_kubernetes: bool = True


_FIELD_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(StackConfig)}


class StackConfigError(KumeoDeployError):
    """The ``kumeo:`` stack config has unknown keys or values of the wrong type (one problem a line)."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@functools.cache
def _program_error() -> type[StackConfigError]:
    """StackConfigError that is also a ``pulumi.RunError``, which Pulumi prints without a traceback."""
    import pulumi

    class ProgramStackConfigError(StackConfigError, pulumi.RunError):
        pass

    ProgramStackConfigError.__name__ = ProgramStackConfigError.__qualname__ = "StackConfigError"
    return ProgramStackConfigError


def check_stack_config(values: Mapping[str, Any]) -> list[str]:
    """The problems of the ``kumeo:`` keys in ``values`` (full keys → raw values); other namespaces are ignored."""
    problems: list[str] = []
    for full, value in sorted(values.items()):
        namespace, _, name = full.partition(":")
        if namespace != CONFIG_NAMESPACE:
            continue
        declared = _BY_NAME.get(name)
        if declared is None:
            problems.append(_unknown(name))
            continue
        problem = _check_value(declared, value)
        if problem:
            problems.append(f"stack config {declared.key} {problem}")
    return problems


def check_config_pairs(pairs: Iterable[tuple[str, str]]) -> list[str]:
    """The problems of ``--config KEY=VALUE`` pairs (a bare key is under ``kumeo:``; ``secrets.NAME`` is a path)."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in pairs:
        full = key if ":" in key else f"{CONFIG_NAMESPACE}:{key}"
        head, dot, entry = full.partition(".")
        if dot and head == f"{CONFIG_NAMESPACE}:secrets":
            problem = _secret_object_entry(entry, value)
            if problem:
                problems.append(f"stack config {head} {problem}")
            continue
        values[full] = value
    return check_stack_config(values) + problems


def _unknown(name: str) -> str:
    if name.startswith(("secrets.", "secrets[")):
        return (f"unknown stack config key {CONFIG_NAMESPACE}:{name}; an entry of {CONFIG_NAMESPACE}:secrets is set "
                f"with --path: pulumi config set --secret --path '{CONFIG_NAMESPACE}:{name}' …")
    text = f"unknown stack config key {CONFIG_NAMESPACE}:{name}"
    match = _closest(name)
    if match:
        return f"{text}; did you mean {CONFIG_NAMESPACE}:{match}?"
    return f"{text}; the keys are listed in docs/deploy.md (Stack configuration)"


def _closest(name: str) -> str | None:
    lowered = {k.lower(): k for k in _BY_NAME}
    if name.lower() in lowered:
        return lowered[name.lower()]
    matches = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[matches[0]] if matches else None


def _check_value(declared: ConfigKey, value: Any) -> str | None:
    if declared.type == "boolean":
        if isinstance(value, bool) or value in _TRUE or value in _FALSE:
            return None
        return f"must be true or false, not {_shown(declared, value)}"
    if declared.type == "object":
        parsed = _object(value)
        if not isinstance(parsed, dict):
            return (f"must be an object of NAME: value entries (pulumi config set --secret --path "
                    f"'{declared.key}.NAME' …), not {_shown(declared, value)}")
        return next((p for p in (_secret_object_entry(str(k), v) for k, v in parsed.items()) if p), None)
    if not isinstance(value, str):
        return f"must be a string, not {_shown(declared, value)}"
    if not declared.secret and isinstance(_object(value), (dict, list)):  # a secret's text is opaque
        return f"must be a string, not an object or a list: {value!r}"
    return declared.check(value) if declared.check else None


def _object(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _shown(declared: ConfigKey, value: Any) -> str:
    return "a secret value" if declared.secret else repr(value)


# -- reading the stack's config ------------------------------------------------------------------------------


def _stack_values() -> dict[str, Any]:
    """Every config key the program was given (``pulumi.runtime.config`` keeps them), with its value."""
    from pulumi.runtime import config as runtime_config

    keys = {*runtime_config.get_config_env(), *runtime_config.CONFIG.get()}
    return {key: runtime_config.get_config(key) for key in keys}


def read_stack_config() -> StackConfig:
    """Check and read the ``kumeo:`` config of the stack being deployed (or the mocked one in tests).

    Raises :class:`StackConfigError` (a ``KumeoDeployError``, and a ``pulumi.RunError`` so the program fails with
    its message alone) naming every unknown key (with the closest known one) and every value of the wrong type.
    """
    import pulumi

    values = {k: v for k, v in _stack_values().items() if k.startswith(f"{CONFIG_NAMESPACE}:")}
    problems = check_stack_config(values)
    if problems:
        raise _program_error()(problems)
    for key in sorted(values):
        if config_key(key).secret and not pulumi.runtime.is_config_secret(key):
            pulumi.log.warn(f"{key} is stored in plain text; run `pulumi config set --secret {key} …` so it is "
                            "encrypted in the stack file")
    config = pulumi.Config(CONFIG_NAMESPACE)
    fields: dict[str, Any] = {"secrets": _secrets(config, values)}
    for declared in CONFIG_KEYS:
        if declared.field is None or declared.field == "secrets":
            continue
        fields[declared.field] = _field_value(config, declared)
    return StackConfig(**fields)


def _field_value(config: pulumi.Config, declared: ConfigKey) -> Any:
    """The key's value; unset: the StackConfig field's default (the declared default, or None for "unset")."""
    if declared.secret:
        return config.get_secret(declared.name)
    value = config.get_bool(declared.name) if declared.type == "boolean" else config.get(declared.name)
    return _FIELD_DEFAULTS[declared.field or ""] if value is None else value


def _secrets(config: pulumi.Config, values: Mapping[str, Any]) -> dict[str, pulumi.Output[str]]:
    import pulumi

    secrets: dict[str, pulumi.Output[str]] = {}
    for name, env_name in SECRET_CONFIG_KEYS.items():
        value = config.get_secret(name) if f"{CONFIG_NAMESPACE}:{name}" in values else None
        if value is not None:
            secrets[env_name] = value
    extra = _object(values.get(f"{CONFIG_NAMESPACE}:secrets")) or {}
    for env_name, value in sorted(extra.items()):
        secrets[str(env_name)] = pulumi.Output.secret(str(value))
    return secrets


# -- what other files are generated from ---------------------------------------------------------------------


def pulumi_project_config() -> dict[str, dict[str, Any]]:
    """The ``config:`` block of a Pulumi.yaml for the keys with a constant default: ``{key: {description, value}}``.

    Pulumi accepts a ``type`` and a ``default`` only for keys in the project's own namespace; a key of another
    namespace (``kumeo:…``) may carry a ``value`` (the default every stack starts from) and a ``description``.
    """
    return {
        k.key: {"description": _plain(k.doc), "value": k.default}
        for k in CONFIG_KEYS
        if k.default is not None and not k.secret
    }


def pulumi_project_comment() -> list[str]:
    """Comment lines for Pulumi.yaml listing the keys that cannot have a project-wide value (no constant default)."""
    return [f"{k.key} ({k.type_doc}): {_plain(k.doc)} Default: {_plain(k.default_text)}."
            for k in CONFIG_KEYS if k.default is None or k.secret]


def _plain(text: str) -> str:
    return text.replace("`", "")


def config_reference_markdown() -> str:
    """The table of ``kumeo:`` keys in docs/deploy.md."""
    rows = ["| Key | Type | Meaning | Default |", "| --- | --- | --- | --- |"]
    for k in CONFIG_KEYS:
        rows.append(f"| `{k.key}` | {k.type_doc} | {k.doc} | {k.default_text} |")
    return "\n".join(rows) + "\n"


DOCS_PATH = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"
REGENERATE = 'python -c "from kumeo_iac.components._config import main; main()"'
DOCS_BEGIN = "<!-- BEGIN generated from kumeo_iac/components/_config.py: do not edit by hand -->"
DOCS_END = "<!-- END generated: kumeo config keys -->"


def docs_with_reference(text: str) -> str:
    """``text`` (docs/deploy.md) with the generated table between its markers replaced by the current one."""
    begin, end = text.index(DOCS_BEGIN), text.index(DOCS_END)
    return text[: begin + len(DOCS_BEGIN)] + "\n" + config_reference_markdown() + text[end:]


def main(argv: list[str] | None = None) -> int:
    """Rewrite the table of keys in docs/deploy.md (``--check``: exit 1 if it is out of date instead)."""
    argv = sys.argv[1:] if argv is None else argv
    text = DOCS_PATH.read_text(encoding="utf-8")
    updated = docs_with_reference(text)
    if "--check" in argv:
        if updated != text:
            print(f"{DOCS_PATH} is out of date: run {REGENERATE}", file=sys.stderr)
            return 1
        return 0
    DOCS_PATH.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Stack configuration under the ``kumeo:`` namespace (``pulumi config set kumeo:namespace prod``).

Keys: ``namespace``, ``natsUrl`` (what agents connect to in the cluster), ``jetstreamUrl`` (what the deployer's
machine reaches to create streams; defaults to ``natsUrl``), ``imageRegistry``, ``keda`` (bool), ``createNamespace``
(bool), ``manageJetStream`` (bool), ``buildImages`` (bool: build agent images and pin Deployments to them),
``pushImages`` (bool), ``natsToken`` (secret), ``natsAuthSeed`` (secret: per-agent NATS users, see
docs/security.md), ``natsTlsSecret`` (the Secret with the NATS CA and client certificate), and API keys as Pulumi secrets: the well-known ones below, plus any others as a
secret object ``kumeo:secrets`` (``pulumi config set --secret --path 'kumeo:secrets.MY_TOKEN' …``).
"""

from __future__ import annotations

import dataclasses
import json

import pulumi

CONFIG_NAMESPACE = "kumeo"

#: Well-known secret config keys → the environment variable agents read them from.
SECRET_CONFIG_KEYS: dict[str, str] = {
    "openaiApiKey": "OPENAI_API_KEY",
    "anthropicApiKey": "ANTHROPIC_API_KEY",
    "ollamaApiKey": "OLLAMA_API_KEY",
    "huggingfaceToken": "HF_TOKEN",
}


@dataclasses.dataclass
class StackConfig:
    """The ``kumeo:`` keys of the current stack; ``None`` means unset."""

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
    secrets: dict[str, pulumi.Output[str]] = dataclasses.field(default_factory=dict)
    #: The seed every NATS password is derived from (``pulumi config set --secret kumeo:natsAuthSeed …``); when
    #: set, each agent connects as its own NATS user and the deployer as ``kumeo-deployer``.
    nats_auth_seed: pulumi.Output[str] | None = None
    #: The Secret (ca.crt, tls.crt, tls.key) agents use for TLS to NATS.
    nats_tls_secret: str | None = None


def read_stack_config() -> StackConfig:
    """Read the ``kumeo:`` config of the stack being deployed (or the mocked one in tests)."""
    config = pulumi.Config(CONFIG_NAMESPACE)
    secrets: dict[str, pulumi.Output[str]] = {}
    for key, env_name in SECRET_CONFIG_KEYS.items():
        if pulumi.runtime.get_config(f"{CONFIG_NAMESPACE}:{key}") is None:
            continue
        if not pulumi.runtime.is_config_secret(f"{CONFIG_NAMESPACE}:{key}"):
            pulumi.log.warn(
                f"kumeo:{key} is stored in plain text; run `pulumi config set --secret kumeo:{key} …` so it is "
                "encrypted in the stack file"
            )
        value = config.get_secret(key)
        if value is not None:
            secrets[env_name] = value
    raw = pulumi.runtime.get_config(f"{CONFIG_NAMESPACE}:secrets")
    if raw:
        extra = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(extra, dict):
            raise ValueError("kumeo:secrets must be an object: pulumi config set --secret --path 'kumeo:secrets.NAME' …")
        for env_name, value in sorted(extra.items()):
            secrets[str(env_name)] = pulumi.Output.secret(str(value))
    return StackConfig(
        namespace=config.get("namespace"),
        nats_url=config.get("natsUrl"),
        jetstream_url=config.get("jetstreamUrl"),
        image_registry=config.get("imageRegistry"),
        keda=config.get_bool("keda"),
        create_namespace=config.get_bool("createNamespace"),
        manage_jetstream=config.get_bool("manageJetStream"),
        build_images=config.get_bool("buildImages"),
        push_images=config.get_bool("pushImages"),
        nats_token=config.get_secret("natsToken"),
        nats_auth_seed=config.get_secret("natsAuthSeed"),
        nats_tls_secret=config.get("natsTlsSecret"),
        secrets=secrets,
    )

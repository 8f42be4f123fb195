"""``kumeo:index:Workflow`` for programs in other languages (Pulumi YAML, TypeScript, Go, …).

The Python SDK's component provider host (``pulumi.provider.experimental.component_provider_host``) serves the
component classes it is given as a Pulumi package and infers the package schema from their type hints: the inputs from
the ``args`` annotation of ``__init__`` (a TypedDict; snake_case keys become camelCase properties) and the outputs from
the class's ``pulumi.Output[...]`` annotations. The type token is ``<package>:index:<class name>``, so the class here is
called ``Workflow`` and the package ``kumeo``: the same token the Python component registers, and it *is* that component
(a subclass that loads a ``.kumeo`` file), so a YAML program's ``kumeo:index:Workflow`` has the JetStream and
Kubernetes resources as its direct children, exactly as a Python program's.

The plugin directory is ``providers/kumeo_component``: ``pulumi-resource-kumeo`` (the executable the engine starts;
it picks the virtualenv) runs ``__main__.py``, which calls :func:`serve`.

No ``from __future__ import annotations`` in this module: the host's analyzer reads the annotations as objects and
does not evaluate strings. For the same reason the outputs are annotated again here (the parent's annotations are
strings, and the analyzer walks the class's MRO; the subclass's entries replace them).
"""

import os
from typing import Any, NotRequired, Required, TypedDict

import pulumi

from kumeo_iac.components import _workflow
from kumeo_iac.errors import KumeoSpecError


class WorkflowComponentArgs(TypedDict, total=False):
    """The inputs of ``kumeo:index:Workflow`` (camelCase in the schema). Every deploy option left out falls back to
    stack config (``kumeo:natsUrl``, ``kumeo:namespace``, …), then to the workflow's own ``deployment:`` block."""

    path: Required[str]
    """The `.kumeo` file. A relative path is resolved against the program's directory (where Pulumi.yaml is)."""
    workflow: NotRequired[str]
    """Which workflow of a file with several to deploy (one component per workflow)."""
    base_dir: NotRequired[str]
    """The directory the workflow's files (models, rules) are relative to; default: the file's directory."""
    namespace: NotRequired[pulumi.Input[str]]
    """Kubernetes namespace. Config: kumeo:namespace."""
    nats_url: NotRequired[pulumi.Input[str]]
    """The NATS URL agents use inside the cluster. Config: kumeo:natsUrl."""
    jetstream_url: NotRequired[pulumi.Input[str]]
    """The NATS URL the machine running Pulumi reaches to create streams (default: natsUrl).
    Config: kumeo:jetstreamUrl."""
    image_registry: NotRequired[str]
    """Registry prefix for agent images. Config: kumeo:imageRegistry."""
    keda: NotRequired[bool]
    """Scale on consumer lag with KEDA ScaledObjects (else HPAs). Config: kumeo:keda."""
    create_namespace: NotRequired[bool]
    """Create the namespace as a child of the component. Config: kumeo:createNamespace."""
    manage_jetstream: NotRequired[bool]
    """Create the JetStream streams, consumers and KV buckets (default true). Config: kumeo:manageJetStream."""
    retain_streams: NotRequired[bool]
    """Keep streams and KV buckets on the server when they leave the stack. Config: kumeo:retainStreams."""
    allow_stream_replacement: NotRequired[bool]
    """Allow a change that replaces a stream or KV bucket, losing its messages. Config: kumeo:allowStreamReplacement."""
    adopt_streams: NotRequired[bool]
    """Take over streams and KV buckets that already exist on the server. Config: kumeo:adoptStreams."""
    await_kubernetes: NotRequired[bool]
    """Wait for Deployments to become ready (default true). Config: kumeo:awaitKubernetes."""
    build_images: NotRequired[bool]
    """Build the agents' images and pin the Deployments to their digests. Config: kumeo:buildImages."""
    secrets: NotRequired[dict[str, pulumi.Input[str]]]
    """Extra secrets for the model and code agents (environment name to value; pass secret values)."""


#: Inputs that go to WorkflowArgs under their own (snake_case) names.
_PASSED = (
    "workflow", "base_dir", "namespace", "nats_url", "jetstream_url", "image_registry", "keda", "create_namespace",
    "manage_jetstream", "retain_streams", "allow_stream_replacement", "adopt_streams", "await_kubernetes",
    "build_images", "secrets",
)


class Workflow(_workflow.Workflow):
    """A Kumeo workflow (a `.kumeo` file) deployed as NATS JetStream streams, consumers and KV buckets and Kubernetes
    objects."""

    namespace: pulumi.Output[str]
    """The Kubernetes namespace the workflow runs in."""
    stream_names: pulumi.Output[list[str]]
    """The JetStream streams of the workflow."""
    consumer_names: pulumi.Output[list[str]]
    """The durable consumers of the workflow."""
    subjects: pulumi.Output[dict[str, Any]]
    """The workflow's NATS subjects (source, targets, per-agent outputs, dead letters)."""
    deployments: pulumi.Output[list[str]]
    """The agents' Kubernetes Deployments."""
    plan_digest: pulumi.Output[str]
    """A digest of the compiled Plan (changes whenever what is deployed changes)."""

    def __init__(self, name: str, args: WorkflowComponentArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        path = args.get("path")
        if not isinstance(path, str) or not path:
            raise KumeoSpecError(
                f"kumeo:index:Workflow {name!r}: 'path' must be a known string (the .kumeo file), got {path!r}"
            )
        # The engine starts the provider in the program's directory: relative paths are the program's.
        program, base_dir = _workflow.load_program_file(os.path.abspath(path))
        kwargs = {k: args[k] for k in _PASSED if args.get(k) is not None}  # type: ignore[literal-required]
        if "base_dir" in kwargs:
            kwargs["base_dir"] = os.path.abspath(kwargs["base_dir"])
        else:
            kwargs["base_dir"] = base_dir
        super().__init__(name, program, opts=opts, **kwargs)

    @classmethod
    def from_file(
        cls, resource_name: str, path: Any, *, opts: pulumi.ResourceOptions | None = None, **kwargs: Any
    ) -> "Workflow":
        return cls(resource_name, {"path": os.fspath(path), **kwargs}, opts)  # type: ignore[typeddict-item]


def serve() -> None:
    """Run the ``kumeo`` component provider (the plugin's ``__main__``): the engine talks to it over gRPC."""
    from pulumi.provider.experimental import component_provider_host

    from kumeo_iac import __version__

    component_provider_host(name="kumeo", components=[Workflow], version=_plugin_version(__version__))


def _plugin_version(version: str) -> str:
    """A semver for the schema (``0.1.0``; a PEP 440 dev/local suffix dropped)."""
    import re

    match = re.match(r"\d+\.\d+\.\d+", version)
    return match.group(0) if match else "0.0.0"

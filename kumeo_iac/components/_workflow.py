"""The ``Workflow`` component: one Kumeo workflow as Pulumi resources (JetStream objects and Kubernetes objects)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi

from kumeo_iac.compile import EDGE_COMPONENT, Plan, WorkflowPlan, apply_order
from kumeo_iac.components import _jetstream
from kumeo_iac.components._config import StackConfig, read_stack_config
from kumeo_iac.components._kubernetes import kubernetes_resource
from kumeo_iac.errors import KumeoDeployError, KumeoSpecError, KumeoValidationError
from kumeo_iac.manifests import (
    deployed_consumers,
    files_config_map_name,
    required_secrets,
    workflow_manifests,
)

TYPE_TOKEN = "kumeo:index:Workflow"

# Stand-ins compiled into the Plan when the namespace or NATS URL is only known as an Output (another resource's
# attribute); every string holding one becomes an Output again when the resources are created.
_NAMESPACE_PLACEHOLDER = "kumeo-namespace-placeholder-0f3a9c"
_NATS_HOST_PLACEHOLDER = "kumeo-nats-placeholder-0f3a9c"
_NATS_URL_PLACEHOLDER = f"nats://{_NATS_HOST_PLACEHOLDER}:4222"

_DEPENDS_ON_ANNOTATION = "kumeo.dev/depends-on"


@dataclasses.dataclass
class WorkflowArgs:
    """How a workflow is deployed; every field left ``None`` falls back to stack config, then to the Spec."""

    #: Kubernetes namespace (a string or another resource's Output). Config: ``kumeo:namespace``.
    namespace: pulumi.Input[str] | None = None
    #: The NATS URL agents use inside the cluster (string or Output). Config: ``kumeo:natsUrl``.
    nats_url: pulumi.Input[str] | None = None
    #: The NATS URL the machine running Pulumi reaches to create streams. Config: ``kumeo:jetstreamUrl``.
    jetstream_url: pulumi.Input[str] | None = None
    #: Registry prefix for agent images. Config: ``kumeo:imageRegistry``.
    image_registry: str | None = None
    #: Scale on consumer lag with KEDA ScaledObjects (else HPAs). Config: ``kumeo:keda``.
    keda: bool | None = None
    #: Create the namespace as a child of the component. Config: ``kumeo:createNamespace``.
    create_namespace: bool | None = None
    #: Create the JetStream streams, consumers and KV buckets (default true). Config: ``kumeo:manageJetStream``.
    manage_jetstream: bool | None = None
    #: Extra secrets (environment name → value or secret Output), added to those from stack config.
    secrets: Mapping[str, pulumi.Input[str]] = dataclasses.field(default_factory=dict)
    #: Which workflow of a multi-workflow Program to deploy.
    workflow: str | None = None
    #: Directory the workflow's files (models, rules) are relative to.
    base_dir: str | None = None
    #: Missing referenced files are errors (as for `kumeo up`), not warnings.
    strict_files: bool = True
    #: A Plan computed elsewhere; skips validation and compilation.
    plan: Plan | WorkflowPlan | None = None
    #: Build one image per image class the agents use (True, or a ``kumeo_iac.images.ImageBuild``) and pin the
    #: Deployments to ``repository:tag@sha256:…``. Config: ``kumeo:buildImages`` (and ``kumeo:pushImages``).
    build_images: Any = None
    #: Keep the streams and KV buckets on the server when they leave the stack (`pulumi destroy`, a removed
    #: workflow); default: delete them with their messages. Config: ``kumeo:retainStreams``.
    retain_streams: bool | None = None
    #: Allow a change JetStream cannot apply in place (e.g. file → memory storage) to replace a stream or KV bucket,
    #: losing its messages; default: such a change fails the preview. Config: ``kumeo:allowStreamReplacement``.
    allow_stream_replacement: bool | None = None
    #: Take over streams and KV buckets that already exist on the server (and converge them to the Plan); default:
    #: creating one that exists fails. Config: ``kumeo:adoptStreams``.
    adopt_streams: bool | None = None
    #: Wait for Deployments to become ready (Pulumi's await; default true). Config: ``kumeo:awaitKubernetes``.
    await_kubernetes: bool | None = None


_ARG_FIELDS = frozenset(f.name for f in dataclasses.fields(WorkflowArgs))


class Workflow(pulumi.ComponentResource):
    """One Kumeo workflow deployed as Pulumi resources: JetStream streams, consumers, KV buckets and Kubernetes objects.

    Build it from a Spec (``Workflow("fraud", spec)``), from DSL keyword arguments (``Workflow("fraud",
    source=NATS("tx"), agents=[...])``) or from a file (``Workflow.from_file("fraud", "fraud.kumeo")``). The
    program is validated (errors raise :class:`~kumeo_iac.errors.KumeoValidationError`) and compiled to a Plan;
    every child resource has this component as parent, so providers, ``protect`` and ``depends_on`` given in
    ``opts`` reach all of them.
    """

    namespace: pulumi.Output[str]
    stream_names: pulumi.Output[list[str]]
    consumer_names: pulumi.Output[list[str]]
    subjects: pulumi.Output[dict[str, Any]]
    deployments: pulumi.Output[list[str]]
    plan_digest: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        spec: Any = None,
        *,
        settings: Any = None,
        args: WorkflowArgs | None = None,
        opts: pulumi.ResourceOptions | None = None,
        **kwargs: Any,
    ) -> None:
        overrides = {k: kwargs.pop(k) for k in list(kwargs) if k in _ARG_FIELDS}
        args = dataclasses.replace(args or WorkflowArgs(), **overrides)
        config = read_stack_config()
        namespace = _first(args.namespace, config.namespace)
        nats_url = _first(args.nats_url, config.nats_url)

        #: The compiled plan of this workflow (plain data).
        self.plan: WorkflowPlan = _plan_for(resource_name, spec, kwargs, args, config, settings, namespace, nats_url)
        namespace = namespace if namespace is not None else self.plan.namespace
        nats_url = nats_url if nats_url is not None else self.plan.nats_url
        jetstream_url = _first(args.jetstream_url, config.jetstream_url, nats_url)
        substitute = _Substitution(namespace, nats_url)
        # Read the files (and fail on a missing one) before registering anything.
        manifests = workflow_manifests(self.plan, args.base_dir)

        super().__init__(TYPE_TOKEN, resource_name, {}, opts)
        caller_depends_on = _resources_in(opts.depends_on if opts else None)

        def child(*depends_on: pulumi.Resource | None, retain: bool = False) -> pulumi.ResourceOptions:
            deps = [*caller_depends_on, *(d for d in depends_on if d is not None)]
            return pulumi.ResourceOptions(parent=self, depends_on=deps or None, retain_on_delete=retain or None)

        plan = self.plan
        labels = {"app.kubernetes.io/part-of": "kumeo", "kumeo.dev/workflow": plan.slug}

        # -- JetStream --------------------------------------------------------------------------------------------
        #: JetStream resources by Plan key (``stream/<name>``, ``consumer/<stream>/<durable>``, ``kv/<bucket>``).
        self.jetstream: dict[str, pulumi.Resource] = {}
        if _first(args.manage_jetstream, config.manage_jetstream, True):
            auth: dict[str, Any] = {"token": config.nats_token}
            if config.nats_auth_seed is not None:  # per-agent users: the deployer has a user of its own too
                from kumeo_iac.compile import DEPLOYER_USER, derive_password

                auth = {"user": DEPLOYER_USER, "password": pulumi.Output.secret(
                    config.nats_auth_seed.apply(lambda seed: derive_password(seed, DEPLOYER_USER)))}
            from kumeo_providers import remember_urn

            remember_urn(self, TYPE_TOKEN, resource_name, opts.parent if opts else None)  # plain-string aliases
            adopt = bool(_first(args.adopt_streams, config.adopt_streams, False))
            allow_replace = bool(_first(args.allow_stream_replacement, config.allow_stream_replacement, False))
            retain = bool(_first(args.retain_streams, config.retain_streams, False))
            # An edge workflow's streams, consumers and buckets live on its site's leaf server (the edge process
            # creates them there); the central NATS gets only the streams that source the site's results.
            for s in plan.edge.hub_streams if plan.edge else plan.streams:
                self.jetstream[f"stream/{s.name}"] = _jetstream.stream(
                    f"{resource_name}-stream-{s.name}", s, jetstream_url, child(retain=retain), **auth,
                    adopt=adopt, allow_replace=allow_replace,
                )
            for kv in [] if plan.edge else plan.key_values:
                self.jetstream[f"kv/{kv.bucket}"] = _jetstream.key_value(
                    f"{resource_name}-kv-{kv.bucket}", kv, jetstream_url, child(retain=retain), **auth,
                    adopt=adopt, allow_replace=allow_replace,
                )
            for c in [] if plan.edge else deployed_consumers(plan):
                stream = self.jetstream.get(f"stream/{c.stream}")
                self.jetstream[f"consumer/{c.stream}/{c.durable}"] = _jetstream.consumer(
                    f"{resource_name}-consumer-{c.stream}-{c.durable}", c, jetstream_url, child(stream),
                    stream=stream, adopt=adopt, **auth,
                )

        # -- Kubernetes -------------------------------------------------------------------------------------------
        #: Kubernetes resources by ``Kind/name``.
        self.kubernetes: dict[str, pulumi.CustomResource] = {}
        wait = bool(_first(args.await_kubernetes, config.await_kubernetes, True))
        namespace_resource: pulumi.Resource | None = None
        if _first(args.create_namespace, config.create_namespace, False):
            obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": {"name": namespace, "labels": labels}}
            namespace_resource = kubernetes_resource(
                f"{resource_name}-namespace", obj if wait else _skip_await(obj), child())
            self.kubernetes["Namespace"] = namespace_resource

        # -- images (opt-in) --------------------------------------------------------------------------------------
        #: Image resources by image class (``base``, ``ml``, ``llm``) with their repository, when built here.
        self.images: dict[str, tuple[pulumi.Resource, str]] = {}
        if _first(args.build_images, config.build_images, False):
            from kumeo_iac.components._images import (
                image_build,
                pin_image,
                workflow_images,
            )

            build = image_build(_first(args.build_images, config.build_images), config.push_images)
            self.images = workflow_images(resource_name, plan, build, args.base_dir, child())

        secrets = {**config.secrets, **dict(args.secrets)}
        objects = _with_secret_env(plan, manifests.objects, sorted(secrets)) if secrets else manifests.objects
        objects = _secret_objects(plan, objects, secrets, config.nats_auth_seed, labels) + objects

        shared: list[pulumi.Resource] = []  # what pods read: the Secrets, the files ConfigMap, the ServiceAccount
        files_map = files_config_map_name(plan)
        agent_ids = {_dns(a.id): a.id for a in plan.agents}
        for obj in apply_order(objects):
            metadata = obj.get("metadata") or {}
            kind = obj["kind"]
            depends_on: list[pulumi.Resource | None] = [namespace_resource]
            if kind in ("Deployment", "StatefulSet"):
                depends_on += shared
                agent = agent_ids.get((metadata.get("labels") or {}).get("kumeo.dev/agent", ""))
                depends_on += self._jetstream_of(agent, plan)
            dependency = (metadata.get("annotations") or {}).get(_DEPENDS_ON_ANNOTATION)
            if dependency and self.jetstream:
                for key in dependency.split(","):
                    if key not in self.jetstream:
                        raise KumeoDeployError(
                            f"{kind} {metadata.get('name')!r} depends on {key!r}, which the Plan does not "
                            "declare; recompile the workflow"
                        )
                    depends_on.append(self.jetstream[key])
            if self.images:
                obj, images = pin_image(plan, obj, self.images)
                depends_on += images
            if not wait:
                obj = _skip_await(obj)
            key = f"{kind}/{metadata.get('name')}"
            resource = kubernetes_resource(
                f"{resource_name}-{_kind_slug(kind)}-{metadata.get('name')}",
                substitute(obj),
                child(*depends_on),
            )
            self.kubernetes[key] = resource
            if kind in ("Secret", "ServiceAccount") or (kind, metadata.get("name")) == ("ConfigMap", files_map):
                shared.append(resource)

        # -- outputs: Outputs of the resources, so whatever uses them waits for them ------------------------------
        self.namespace = pulumi.Output.from_input(namespace)
        jetstream = self.jetstream
        streams = plan.edge.hub_streams if plan.edge else plan.streams
        self.stream_names = _names_of([jetstream.get(f"stream/{s.name}") for s in streams], [s.name for s in streams])
        self.consumer_names = _names_of([jetstream.get(f"consumer/{c.stream}/{c.durable}") for c in plan.consumers],
                                        [c.durable for c in plan.consumers])
        deployments = {k.partition("/")[2]: r for k, r in self.kubernetes.items() if k.startswith("Deployment/")}
        self.deployments = _names_of(list(deployments.values()), list(deployments))
        self.subjects = _names_of(list(jetstream.values()), _subjects(plan))
        self.plan_digest = pulumi.Output.from_input(plan_digest(plan))
        self.register_outputs(
            {
                "namespace": self.namespace,
                "streamNames": self.stream_names,
                "consumerNames": self.consumer_names,
                "subjects": self.subjects,
                "deployments": self.deployments,
                "planDigest": self.plan_digest,
            }
        )

    def _jetstream_of(self, agent_id: str | None, plan: WorkflowPlan) -> list[pulumi.Resource]:
        """The consumers and KV buckets an agent's pods use (the gateway's: every stream)."""
        if not self.jetstream:
            return []
        if agent_id is None:  # the gateway binds to its target consumers too
            gateway = {f"consumer/{c.stream}/{c.durable}" for c in deployed_consumers(plan) if c.agent == "gateway"}
            return [r for k, r in self.jetstream.items() if k.startswith("stream/") or k in gateway]
        from kumeo_iac.compile import agent_buckets

        agent = plan.agent(agent_id)
        keys = [f"consumer/{c.stream}/{c.durable}" for c in agent.consumers]
        keys += [f"kv/{b}" for b in agent_buckets(agent, plan.key_values)]
        return [self.jetstream[k] for k in keys if k in self.jetstream]

    @classmethod
    def from_file(
        cls,
        resource_name: str,
        path: str | os.PathLike[str],
        *,
        opts: pulumi.ResourceOptions | None = None,
        **kwargs: Any,
    ) -> Workflow:
        """The workflow written in a `.kumeo` file; its models and rules are found next to the file."""
        program, base_dir = load_program_file(path)
        kwargs.setdefault("base_dir", base_dir)
        return cls(resource_name, program, opts=opts, **kwargs)


def load_program_file(path: str | os.PathLike[str]) -> tuple[Any, str]:
    """The Program in a `.kumeo` file or a Python workflow, and the directory its files are relative to (the file's).

    It is read by :func:`kumeo_iac.load`, as every command reads it: anything the importer or the checks find
    raises :class:`KumeoValidationError` with every diagnostic, so a misspelt agent kind is never silently dropped.
    """
    from kumeo_iac._load import load

    return load(path), os.path.dirname(os.path.abspath(path))


# -- building the plan ----------------------------------------------------------------------------------------


def _first(*values: Any) -> Any:
    for v in values:
        if v is not None:
            return v
    return None


def _plan_for(
    resource_name: str,
    spec: Any,
    dsl: dict[str, Any],
    args: WorkflowArgs,
    config: StackConfig,
    settings: Any,
    namespace: Any,
    nats_url: Any,
) -> WorkflowPlan:
    if args.plan is not None:
        if spec is not None or dsl:
            raise KumeoSpecError("give a Spec, DSL arguments or plan=, not several")
        return _select(args.plan, args.workflow)

    from kumeo_iac.spec import Program, WorkflowSpec

    if spec is None:
        if not dsl:
            raise KumeoSpecError(
                f"Workflow {resource_name!r} needs a WorkflowSpec, a Program, DSL arguments (source=, agents=, …) "
                "or Workflow.from_file(…)"
            )
        try:
            spec = WorkflowSpec(**{"name": resource_name, **dsl})
        except Exception as exc:  # pydantic's ValidationError; users catch ours
            raise KumeoSpecError(f"Workflow {resource_name!r}: {exc}") from exc
    elif dsl:
        raise KumeoSpecError(f"unexpected arguments {sorted(dsl)}: give either a Spec or DSL arguments")
    if isinstance(spec, WorkflowSpec):
        program = Program(workflows=[spec])
    elif isinstance(spec, Program):
        program = spec
    else:
        raise KumeoSpecError(f"Workflow expects a WorkflowSpec or a Program, not {type(spec).__name__}")

    from kumeo_iac.validate import validate

    base_dir = args.base_dir or (os.path.dirname(program.path) if program.path else None)
    args.base_dir = base_dir  # the files ConfigMap reads from the same place
    diagnostics = validate(program, base_dir=Path(base_dir) if base_dir else None, strict_files=args.strict_files)
    if any(d.is_error for d in diagnostics):
        raise KumeoValidationError(diagnostics)
    for d in diagnostics:
        pulumi.log.warn(d.format())

    from kumeo_iac.compile import compile_program

    platform = _platform_settings(
        settings,
        namespace=_NAMESPACE_PLACEHOLDER if _is_output(namespace) else namespace,
        nats_url=_NATS_URL_PLACEHOLDER if _is_output(nats_url) else nats_url,
        image_registry=_first(args.image_registry, config.image_registry),
        keda_enabled=_first(args.keda, config.keda),
        secrets=_secret_refs(program, args, config),
        nats_auth=True if config.nats_auth_seed is not None else None,
        nats_tls={"secret": config.nats_tls_secret} if config.nats_tls_secret else None,
    )
    plan = compile_program(program, base_dir=Path(base_dir) if base_dir else None, settings=platform)
    return _select(plan, args.workflow or (program.workflows[0].name if len(program.workflows) == 1 else None))


def _secret_refs(program: Any, args: WorkflowArgs, config: StackConfig) -> dict[str, str] | None:
    """Environment variable → Secret name, for compile to write the ``secretKeyRef``s."""
    keys = sorted({**config.secrets, **dict(args.secrets)})
    if not keys:
        return None
    from kumeo_iac.compile import slugify

    names = [w.name for w in program.workflows if args.workflow in (None, w.name)]
    slug = slugify(names[0]) if len(names) == 1 else None
    return {key: secret_name(slug) for key in keys} if slug else None


def _platform_settings(settings: Any, **overrides: Any) -> Any:
    """PlatformSettings with the given overrides (``None`` keeps the default); unknown fields are left out."""
    from kumeo_iac.compile import PlatformSettings

    base = settings if settings is not None else PlatformSettings()
    if dataclasses.is_dataclass(base):
        known = {f.name for f in dataclasses.fields(base)}
    else:
        known = set(getattr(type(base), "model_fields", {}))
    values = {k: v for k, v in overrides.items() if v is not None and k in known}
    if settings is not None:  # explicit settings win over stack config; only the Output stand-ins still apply
        values = {k: v for k, v in values.items() if v in (_NAMESPACE_PLACEHOLDER, _NATS_URL_PLACEHOLDER)}
    if "for_cluster" in known:  # the component deploys to a cluster: endpoints no pod runs are refused
        values["for_cluster"] = True
    if dataclasses.is_dataclass(base) and not isinstance(base, type):
        return dataclasses.replace(base, **values)
    return base.model_copy(update=values)


def _select(plan: Plan | WorkflowPlan, name: str | None) -> WorkflowPlan:
    if isinstance(plan, WorkflowPlan):
        return plan
    if name is not None:
        try:
            return plan.workflow(name)
        except KeyError:
            raise KumeoSpecError(
                f"no workflow {name!r}; the program has {[w.name for w in plan.workflows]}"
            ) from None
    if len(plan.workflows) != 1:
        raise KumeoSpecError(
            f"the program has {len(plan.workflows)} workflows {[w.name for w in plan.workflows]}; pick one with "
            "workflow='…' (one Workflow component per workflow)"
        )
    return plan.workflows[0]


# -- objects ---------------------------------------------------------------------------------------------------


def _is_output(value: Any) -> bool:
    return value is not None and not isinstance(value, str)


def _resources_in(depends_on: Any) -> list[pulumi.Resource]:
    if depends_on is None:
        return []
    if isinstance(depends_on, pulumi.Resource):
        return [depends_on]
    if isinstance(depends_on, (list, tuple)):
        return [d for d in depends_on if isinstance(d, pulumi.Resource)]
    return []  # an Output of resources: Pulumi resolves it for the component itself


def _kind_slug(kind: str) -> str:
    return kind.lower()


class _Substitution:
    """Turns strings holding a placeholder back into Outputs of the real namespace / NATS URL."""

    def __init__(self, namespace: Any, nats_url: Any) -> None:
        pairs: list[tuple[str, Any]] = []
        if _is_output(namespace):
            pairs.append((_NAMESPACE_PLACEHOLDER, namespace))
        if _is_output(nats_url):
            from urllib.parse import urlsplit

            # The whole URL first; what is left is the host inside derived values (the KEDA monitoring endpoint).
            pairs.append((_NATS_URL_PLACEHOLDER, nats_url))
            pairs.append((_NATS_HOST_PLACEHOLDER, pulumi.Output.from_input(nats_url).apply(
                lambda url: urlsplit(url).hostname or url)))
        self.pairs = pairs

    def __call__(self, value: Any) -> Any:
        if not self.pairs:
            return value
        return self._walk(value)

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            used = [(p, v) for p, v in self.pairs if p in value]
            if not used:
                return value

            def fill(resolved: list[str], text: str = value) -> str:
                for (placeholder, _), real in zip(used, resolved, strict=True):
                    text = text.replace(placeholder, real)
                return text

            return pulumi.Output.all(*(v for _, v in used)).apply(fill)
        if isinstance(value, dict):
            return {k: self._walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._walk(v) for v in value]
        return value


def secret_name(workflow_slug: str) -> str:
    """The Kubernetes Secret holding a workflow's API keys."""
    return f"{workflow_slug}-secrets"


def _dns(agent_id: str) -> str:
    from kumeo_iac.compile import slugify

    return slugify(agent_id)


def _with_secret_env(plan: WorkflowPlan, objects: list[dict[str, Any]], keys: list[str]) -> list[dict[str, Any]]:
    """The objects with the API keys' ``secretKeyRef``s on the pods that read them: those of agents whose kind
    declares ``uses_secrets`` (LLM, Custom), and an edge pod's runtime container when one of its agents does.

    Compile writes them when it knows the keys; a Plan compiled without them (``plan=``) gets them here.
    """
    consuming = {_dns(a.id) for a in plan.agents if a.uses_secrets}
    edge_consumes = plan.edge is not None and bool(consuming)
    name = secret_name(plan.slug)
    result = []
    for obj in objects:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        edge_pod = edge_consumes and obj.get("kind") == "StatefulSet" and labels.get(
            "kumeo.dev/component") == EDGE_COMPONENT
        agent_pod = obj.get("kind") in ("Deployment", "StatefulSet") and labels.get("kumeo.dev/agent") in consuming
        if agent_pod or edge_pod:
            obj = json.loads(json.dumps(obj))  # a private copy: the Plan stays untouched
            for c in obj["spec"]["template"]["spec"]["containers"]:
                if edge_pod and c.get("name") != EDGE_COMPONENT:
                    continue  # the leaf nats-server never sees them
                env = c.setdefault("env", [])
                present = {e.get("name") for e in env}
                env.extend({"name": k, "valueFrom": {"secretKeyRef": {"name": name, "key": k}}}
                           for k in keys if k not in present)
        result.append(obj)
    return result


def _secret_objects(
    plan: WorkflowPlan, objects: list[dict[str, Any]], secrets: Mapping[str, Any], seed: pulumi.Output[str] | None,
    labels: dict[str, str],
) -> list[dict[str, Any]]:
    """The Secrets the component can fill: the API keys (from stack secrets and ``secrets=``) and the NATS passwords
    (derived from ``kumeo:natsAuthSeed``). Values stay Pulumi secrets: encrypted in state, masked in previews.

    Any other Secret the pods read (the NATS TLS Secret) is the user's to create, as `kumeo render` lists.
    """
    from kumeo_iac.compile import credentials_secret_name, derive_password

    def secret(name: str, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": plan.namespace,
                         "labels": {**labels, "app.kubernetes.io/name": name}},
            "type": "Opaque",
            "stringData": data,
        }

    out = []
    required = {s.name: s.keys for s in required_secrets(objects)}
    if secrets:
        out.append(secret(secret_name(plan.slug), {k: pulumi.Output.secret(v) for k, v in sorted(secrets.items())}))
    users = required.get(credentials_secret_name(plan.slug))
    if users:
        if seed is None:
            raise KumeoDeployError(
                f"workflow {plan.name!r} was compiled with per-agent NATS users (nats_auth) but no seed to derive "
                "their passwords from; run `pulumi config set --secret kumeo:natsAuthSeed \"$(openssl rand -base64 "
                "32)\"`")
        out.append(secret(credentials_secret_name(plan.slug), {
            user: pulumi.Output.secret(seed.apply(functools.partial(derive_password, user=user))) for user in users}))
    return out


def _skip_await(obj: dict[str, Any]) -> dict[str, Any]:
    """The object annotated so the Kubernetes provider does not wait for it to become ready."""
    metadata = obj.get("metadata") or {}
    annotations = {**(metadata.get("annotations") or {}), "pulumi.com/skipAwait": "true"}
    return {**obj, "metadata": {**metadata, "annotations": annotations}}


def _names_of(resources: list[pulumi.Resource | None], value: Any) -> pulumi.Output[Any]:
    """``value`` as an Output that carries ``resources`` as its dependencies: a resource given it as an input, or
    given an Output applied from it, is created after them.

    Built directly rather than as ``Output.all(*urns).apply(lambda _: value)``: that costs the SDK a task per
    resource, and an Output for every element of a returned list or dict (a 500-agent workflow's subjects alone
    are a thousand), for the same dependencies and the same value, which is plain data known now.
    """
    loop = asyncio.get_event_loop()

    def settled(result: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = loop.create_future()
        future.set_result(result)
        return future

    return pulumi.Output({r for r in resources if r is not None}, settled(value), settled(True), settled(False))


def plan_digest(plan: WorkflowPlan) -> str:
    """The SHA-256 of the workflow's Plan JSON: what the stack state keeps of the Plan (the Plan itself can be
    megabytes; `kumeo render` writes it whole)."""
    import hashlib

    from kumeo_iac.compile import Plan

    # Compact JSON: the C encoder serialises it several times faster than the indented form.
    return "sha256:" + hashlib.sha256(Plan([plan]).to_json(indent=None).encode("utf-8")).hexdigest()


def _subjects(plan: WorkflowPlan) -> dict[str, Any]:
    return {
        "sources": [s.subject for s in plan.sources],
        "targets": [t.subject for t in plan.targets],
        "agents": {a.id: a.output_subject for a in plan.agents},
        "deadLetters": {a.id: a.dead_letter_subject for a in plan.agents},
    }

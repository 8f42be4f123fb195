"""The ``Workflow`` component: one Kumeo workflow as Pulumi resources (JetStream objects and Kubernetes objects)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi

from kumeo_iac.compile._plan import Plan, WorkflowPlan
from kumeo_iac.components import _jetstream
from kumeo_iac.components._config import StackConfig, read_stack_config
from kumeo_iac.components._kubernetes import kubernetes_resource
from kumeo_iac.errors import KumeoDeployError, KumeoSpecError, KumeoValidationError

TYPE_TOKEN = "kumeo:index:Workflow"

# Stand-ins compiled into the Plan when the namespace or NATS URL is only known as an Output (another resource's
# attribute); every string holding one becomes an Output again when the resources are created.
_NAMESPACE_PLACEHOLDER = "kumeo-namespace-placeholder-0f3a9c"
_NATS_HOST_PLACEHOLDER = "kumeo-nats-placeholder-0f3a9c"
_NATS_URL_PLACEHOLDER = f"nats://{_NATS_HOST_PLACEHOLDER}:4222"

#: Agent kinds whose pods receive the API keys (model providers, user code); other pods never see them.
SECRET_CONSUMING_KINDS = frozenset({"LLM", "Custom"})

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
    subjects: pulumi.Output[dict[str, Any]]
    deployments: pulumi.Output[list[str]]
    plan_json: pulumi.Output[str]

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

        super().__init__(TYPE_TOKEN, resource_name, {}, opts)
        caller_depends_on = _resources_in((opts.depends_on if opts else None))

        def child(*depends_on: pulumi.Resource | None) -> pulumi.ResourceOptions:
            deps = [*caller_depends_on, *(d for d in depends_on if d is not None)]
            return pulumi.ResourceOptions(parent=self, depends_on=deps or None)

        plan = self.plan
        labels = {"app.kubernetes.io/part-of": "kumeo", "kumeo.dev/workflow": plan.slug}

        # -- JetStream --------------------------------------------------------------------------------------------
        #: JetStream resources by Plan key (``stream/<name>``, ``consumer/<stream>/<durable>``, ``kv/<bucket>``).
        self.jetstream: dict[str, pulumi.Resource] = {}
        if _first(args.manage_jetstream, config.manage_jetstream, True):
            auth: dict[str, Any] = {"token": config.nats_token}
            if config.nats_auth_seed is not None:  # per-agent users: the deployer has a user of its own too
                from kumeo_iac.compile._security import DEPLOYER_USER, derive_password

                auth = {"user": DEPLOYER_USER, "password": pulumi.Output.secret(
                    config.nats_auth_seed.apply(lambda seed: derive_password(seed, DEPLOYER_USER)))}
            for s in plan.streams:
                self.jetstream[f"stream/{s.name}"] = _jetstream.stream(
                    f"{resource_name}-stream-{s.name}", s, jetstream_url, child(), **auth
                )
            for kv in plan.key_values:
                self.jetstream[f"kv/{kv.bucket}"] = _jetstream.key_value(
                    f"{resource_name}-kv-{kv.bucket}", kv, jetstream_url, child(), **auth
                )
            for c in plan.consumers:
                stream = self.jetstream.get(f"stream/{c.stream}")
                self.jetstream[f"consumer/{c.stream}/{c.durable}"] = _jetstream.consumer(
                    f"{resource_name}-consumer-{c.stream}-{c.durable}", c, jetstream_url, child(stream),
                    stream=stream, **auth,
                )

        # -- Kubernetes -------------------------------------------------------------------------------------------
        #: Kubernetes resources by ``Kind/name``.
        self.kubernetes: dict[str, pulumi.CustomResource] = {}
        namespace_resource: pulumi.Resource | None = None
        if _first(args.create_namespace, config.create_namespace, False):
            from pulumi_kubernetes.core.v1 import Namespace

            namespace_resource = Namespace(
                f"{resource_name}-namespace", metadata={"name": namespace, "labels": labels}, opts=child()
            )
            self.kubernetes["Namespace"] = namespace_resource

        # -- images (opt-in) --------------------------------------------------------------------------------------
        #: Image resources by image class (``base``, ``ml``, ``llm``) with their repository, when built here.
        self.images: dict[str, tuple[pulumi.Resource, str]] = {}
        if _first(args.build_images, config.build_images, False):
            from kumeo_iac.components._images import image_build, pin_image, workflow_images

            build = image_build(_first(args.build_images, config.build_images), config.push_images)
            self.images = workflow_images(resource_name, plan, build, args.base_dir, child())

        objects = list(plan.kubernetes)
        files = _files_config_map(plan, args.base_dir, labels)
        if files is not None:
            objects.insert(next((i for i, o in enumerate(objects) if o.get("kind") == "Deployment"), len(objects)), files)
        secrets = {**config.secrets, **dict(args.secrets)}
        if secrets:
            objects = _with_secrets(plan, objects, secrets, labels)
        objects = _with_nats_credentials(plan, objects, config.nats_auth_seed, labels)

        for obj in objects:
            metadata = obj.get("metadata") or {}
            depends_on: list[pulumi.Resource | None] = [namespace_resource]
            dependency = (metadata.get("annotations") or {}).get(_DEPENDS_ON_ANNOTATION)
            if dependency and self.jetstream:
                if dependency not in self.jetstream:
                    raise KumeoDeployError(
                        f"{obj['kind']} {metadata.get('name')!r} depends on {dependency!r}, which the Plan does not "
                        "declare; recompile the workflow"
                    )
                depends_on.append(self.jetstream[dependency])
            if self.images:
                obj, image = pin_image(plan, obj, self.images)
                depends_on.append(image)
            key = f"{obj['kind']}/{metadata.get('name')}"
            self.kubernetes[key] = kubernetes_resource(
                f"{resource_name}-{_kind_slug(obj['kind'])}-{metadata.get('name')}",
                substitute(obj),
                child(*depends_on),
            )

        # -- outputs ----------------------------------------------------------------------------------------------
        self.namespace = pulumi.Output.from_input(namespace)
        self.stream_names = pulumi.Output.from_input([s.name for s in plan.streams])
        self.subjects = pulumi.Output.from_input(_subjects(plan))
        self.deployments = pulumi.Output.from_input(
            [o["metadata"]["name"] for o in plan.kubernetes if o.get("kind") == "Deployment"]
        )
        self.plan_json = pulumi.Output.from_input(
            substitute(json.dumps(dataclasses.asdict(plan), indent=2, sort_keys=True, ensure_ascii=False))
        )
        self.register_outputs(
            {
                "namespace": self.namespace,
                "streamNames": self.stream_names,
                "subjects": self.subjects,
                "deployments": self.deployments,
                "planJson": self.plan_json,
            }
        )

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
        from kumeo_iac.lang import parse_file

        path = os.fspath(path)
        program = parse_file(path).program
        kwargs.setdefault("base_dir", os.path.dirname(os.path.abspath(path)))
        return cls(resource_name, program, opts=opts, **kwargs)


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
    from kumeo_iac.compile._names import slugify

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
    if dataclasses.is_dataclass(base):
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
                for (placeholder, _), real in zip(used, resolved):
                    text = text.replace(placeholder, real)
                return text

            return pulumi.Output.all(*(v for _, v in used)).apply(fill)
        if isinstance(value, dict):
            return {k: self._walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._walk(v) for v in value]
        return value


#: A ConfigMap holds at most 1 MiB; bigger model files belong on a volume (``PlatformSettings.files_volume``).
_CONFIG_MAP_LIMIT = 1024 * 1024 - 16 * 1024


def _files_config_map(plan: WorkflowPlan, base_dir: str | None, labels: dict[str, str]) -> dict[str, Any] | None:
    """The ConfigMap of the files agents read (models, networks, rules), when the Deployments mount one by name.

    Compile names it (``<slug>-files``) and leaves creating it to the deployer, since only the deployer reads files.
    """
    from kumeo_iac.compile._kubernetes import files_key
    from kumeo_iac.compile._names import dns_name

    name = dns_name(plan.slug, "files")
    if any(o.get("kind") == "ConfigMap" and o["metadata"].get("name") == name for o in plan.kubernetes):
        return None
    mounted = any(
        (v.get("configMap") or {}).get("name") == name
        for o in plan.kubernetes
        if o.get("kind") == "Deployment"
        for v in o.get("spec", {}).get("template", {}).get("spec", {}).get("volumes", []) or []
    )
    paths = sorted({f for a in plan.agents for f in a.files})
    if not mounted or not paths:
        return None
    import base64

    binary: dict[str, str] = {}
    total = 0
    for relative in paths:
        full = os.path.join(base_dir or ".", relative)
        try:
            with open(full, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise KumeoDeployError(
                f"workflow {plan.name!r} needs {relative!r} (looked in {os.path.abspath(full)}): {exc.strerror}; "
                "create the file or pass base_dir= where it lives"
            ) from None
        total += len(data)
        binary[files_key(relative)] = base64.b64encode(data).decode("ascii")
    if total > _CONFIG_MAP_LIMIT:
        raise KumeoDeployError(
            f"workflow {plan.name!r} reads {total} bytes of files, more than a ConfigMap holds (1 MiB); put them on "
            "a volume and set PlatformSettings(files_volume={'persistentVolumeClaim': {...}})"
        )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": plan.namespace, "labels": {**labels, "app.kubernetes.io/name": name}},
        "binaryData": binary,
    }


def secret_name(workflow_slug: str) -> str:
    """The Kubernetes Secret holding a workflow's API keys."""
    return f"{workflow_slug}-secrets"


def _with_secrets(
    plan: WorkflowPlan, objects: list[dict[str, Any]], secrets: Mapping[str, Any], labels: dict[str, str]
) -> list[dict[str, Any]]:
    """Add the Secret holding the API keys, placed before the first pod that reads it.

    The values stay Pulumi secrets (encrypted in state, masked in previews); only the Secret's name and keys appear
    in the Deployments (``secretKeyRef``, written by compile for LLM and Custom agents) and nothing of them reaches
    the Plan's ConfigMap. A Plan compiled without the keys (``plan=``) gets the references added here.
    """
    name = secret_name(plan.slug)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": plan.namespace, "labels": {**labels, "app.kubernetes.io/name": name}},
        "type": "Opaque",
        "stringData": {key: pulumi.Output.secret(value) for key, value in sorted(secrets.items())},
    }
    consuming = {_dns(a.id) for a in plan.agents if a.kind in SECRET_CONSUMING_KINDS}
    result: list[dict[str, Any]] = []
    placed = False
    for obj in objects:
        if obj.get("kind") == "Deployment":
            if not placed:
                result.append(secret)
                placed = True
            agent = ((obj.get("metadata") or {}).get("labels") or {}).get("kumeo.dev/agent")
            if agent in consuming:
                obj = _with_secret_env(obj, name, sorted(secrets))
        result.append(obj)
    if not placed:
        result.append(secret)
    return result


def _dns(agent_id: str) -> str:
    from kumeo_iac.compile._names import slugify

    return slugify(agent_id)


def _with_secret_env(obj: dict[str, Any], name: str, keys: list[str]) -> dict[str, Any]:
    containers = obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    present = {e.get("name") for c in containers for e in c.get("env") or []}
    if all(k in present for k in keys):
        return obj
    obj = json.loads(json.dumps(obj))  # a private copy: the Plan stays untouched
    for c in obj["spec"]["template"]["spec"]["containers"]:
        env = c.setdefault("env", [])
        names = {e.get("name") for e in env}
        env.extend(
            {"name": k, "valueFrom": {"secretKeyRef": {"name": name, "key": k}}} for k in keys if k not in names
        )
    return obj


def _with_nats_credentials(
    plan: WorkflowPlan, objects: list[dict[str, Any]], seed: pulumi.Output[str] | None, labels: dict[str, str]
) -> list[dict[str, Any]]:
    """Add one Secret per agent holding its NATS password, derived from ``kumeo:natsAuthSeed``, before its pods.

    The Deployments compiled with ``nats_auth`` read ``NATS_PASSWORD`` from ``<slug>-<agent>-nats``; the values
    are Pulumi secrets (encrypted in state, masked in previews) and never reach the Plan.
    """
    wanted: list[tuple[str, str]] = []  # (secret name, NATS user)
    for obj in objects:
        if obj.get("kind") != "Deployment":
            continue
        for c in obj["spec"]["template"]["spec"].get("containers", []):
            env = {e.get("name"): e for e in c.get("env") or []}
            ref = ((env.get("NATS_PASSWORD") or {}).get("valueFrom") or {}).get("secretKeyRef")
            if ref and "value" in (env.get("NATS_USER") or {}):
                wanted.append((ref["name"], env["NATS_USER"]["value"]))
    if not wanted:
        return objects
    if seed is None:
        raise KumeoDeployError(
            f"workflow {plan.name!r} was compiled with per-agent NATS users (nats_auth) but no seed to derive their "
            "passwords from; run `pulumi config set --secret kumeo:natsAuthSeed \"$(openssl rand -base64 32)\"`"
        )
    from kumeo_iac.compile._security import PASSWORD_KEY, derive_password

    at = next((i for i, o in enumerate(objects) if o.get("kind") == "Deployment"), len(objects))
    result = objects[:at]
    for name, user in sorted(set(wanted)):
        result.append({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": plan.namespace,
                         "labels": {**labels, "app.kubernetes.io/name": name}},
            "type": "Opaque",
            "stringData": {PASSWORD_KEY: pulumi.Output.secret(seed.apply(lambda s, u=user: derive_password(s, u)))},
        })
    return result + objects[at:]


def _subjects(plan: WorkflowPlan) -> dict[str, Any]:
    return {
        "sources": [s.subject for s in plan.sources],
        "targets": [t.subject for t in plan.targets],
        "agents": {a.id: a.output_subject for a in plan.agents},
        "deadLetters": {a.id: a.dead_letter_subject for a in plan.agents},
    }

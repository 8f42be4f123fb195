"""Helpers for unit-testing your own Pulumi stacks that use Kumeo, and for asserting facts about a Plan.

No Pulumi engine runs in a unit test: :class:`PulumiMocks` stands in for it (Pulumi's own unit-testing method,
``pulumi.runtime.set_mocks``). Every resource your program registers is recorded with its type, name, inputs and the
options the engine would have seen (parent, provider, dependencies, protect), so a test can assert on them without a
cluster, a NATS server or the ``pulumi`` CLI::

    # conftest.py registers the fixture once: pytest_plugins = ["kumeo_iac.testing"]
    from kumeo_iac.testing import resources_of_type

    def test_every_agent_gets_a_deployment(pulumi_mocks):
        resources = pulumi_mocks.run(lambda: Workflow.from_file("fraud", "fraud.kumeo"))
        assert len(resources_of_type(resources, "kubernetes:apps/v1:Deployment")) == 5

Mocked inputs pass through protobuf, so integers come back as floats (``replicas == 1.0``), and secret values come
back wrapped (use :func:`is_secret` / :func:`unwrap_secret`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

import pulumi
import pytest
from pulumi.runtime import mocks as _mocks
from pulumi.runtime import rpc as _rpc

if TYPE_CHECKING:
    from kumeo_iac.compile import AgentPlan, Plan, WorkflowPlan

__all__ = [
    "PulumiMocks",
    "RecordedResource",
    "assert_plan_has_agent",
    "assert_plan_has_consumer",
    "assert_plan_has_kubernetes_object",
    "assert_plan_has_stream",
    "await_output",
    "find_resource",
    "is_secret",
    "mocked_engine",
    "output_is_secret",
    "output_resources",
    "pulumi_mocks",
    "resources_of_type",
    "run_program",
    "unwrap_secret",
]

COMPONENT = "<component>"


@dataclasses.dataclass(frozen=True)
class RecordedResource:
    """One resource registration as the (mocked) engine received it."""

    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    custom: bool
    parent: str  # the parent's URN ("" for the stack's direct children)
    provider: str  # "urn::id" of an explicit or inherited provider, "" for the default provider
    providers: dict[str, str]  # package → provider reference (set on components)
    dependencies: list[str]  # URNs from depends_on and from Outputs used as inputs
    protect: bool
    id: str | None = None
    #: The provider plugin version asked for ("" for any).
    version: str = ""
    #: Outputs kept secret in the state besides those that were secret inputs.
    additional_secret_outputs: list[str] = dataclasses.field(default_factory=list)
    #: Whether the engine leaves the real object in place when the resource is deleted from the stack.
    retain_on_delete: bool = False

    @property
    def provider_urn(self) -> str:
        """The provider's URN without its id (``urn:pulumi:…::pulumi:providers:kubernetes::k8s``)."""
        return self.provider.rsplit("::", 1)[0] if self.provider else ""

    def get(self, path: str, default: Any = None) -> Any:
        """An input by dotted path (``"spec.template.spec.containers"``); secrets are unwrapped."""
        value: Any = self.inputs
        for part in path.split("."):
            value = unwrap_secret(value)
            if isinstance(value, Mapping) and part in value:
                value = value[part]
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                return default
        return value


class _RecordingMonitor(_mocks.MockMonitor):
    """Pulumi's mock monitor, also keeping the options of each registration (which ``MockResourceArgs`` omits)."""

    def __init__(self, mocks: PulumiMocks) -> None:
        super().__init__(mocks)
        self._recorder = mocks

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]  # pulumi's is unannotated
        if request.type != "pulumi:pulumi:Stack":
            self._recorder._record(request, response.urn, response.id or None)
        return response

    def ReadResource(self, request: Any) -> Any:
        response = super().ReadResource(request)  # type: ignore[no-untyped-call]  # pulumi's is unannotated
        self._recorder._record(request, response.urn, request.id or None)
        return response


class PulumiMocks(_mocks.Mocks):
    """Stands in for the Pulumi engine in unit tests and records every resource a program registers.

    Outputs of a mocked resource are its inputs, plus what a real provider would fill in that programs commonly
    read: ``metadata.name`` for auto-named Kubernetes objects (the resource name, without a random suffix) and
    ``status.name``/``status.namespace`` for Helm releases. Subclass and override :meth:`outputs_for` for more.
    """

    def __init__(self) -> None:
        self.resources: list[RecordedResource] = []
        self.calls: list[_mocks.MockCallArgs] = []
        #: The inputs the mock monitor has just deserialized for ``new_resource``, per monitor thread, so recording
        #: the registration does not deserialize them a second time.
        self._deserialized = threading.local()

    # -- what the engine would return ------------------------------------------------------------------------
    def new_resource(self, args: _mocks.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self._deserialized.inputs = (args.typ, args.name, args.inputs)
        if args.custom is False:
            return None, {}
        return f"{args.name}-id", self.outputs_for(args.typ, args.name, dict(args.inputs))

    def call(self, args: _mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        self.calls.append(args)
        return {}, None

    def outputs_for(self, type_: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        """The state a mocked resource reports back; defaults to its inputs with a few provider-computed fields.

        ``inputs`` are also what the registration records: an override copies what it changes rather than
        modifying them in place.
        """
        outputs = dict(inputs)
        if (type_.startswith("kubernetes:") and "metadata" in outputs) or type_.startswith("kubernetes:core/v1"):
            metadata = dict(unwrap_secret(outputs.get("metadata")) or {})
            metadata.setdefault("name", name)
            outputs["metadata"] = metadata
        if type_ == "kubernetes:helm.sh/v3:Release":
            outputs["status"] = {
                "name": inputs.get("name") or name,
                "namespace": inputs.get("namespace") or "default",
                "status": "deployed",
                "chart": inputs.get("chart"),
            }
        return outputs

    # -- recording --------------------------------------------------------------------------------------------
    def _record(self, request: Any, urn: str, id_: str | None) -> None:
        registering = request.DESCRIPTOR.name == "RegisterResourceRequest"
        seen = getattr(self._deserialized, "inputs", None)
        self._deserialized.inputs = None
        if seen is not None and seen[:2] == (request.type, request.name):
            inputs = seen[2]  # what new_resource was given (a subclass overriding it may not have stored them)
        else:
            inputs = _rpc.deserialize_properties(request.object if registering else request.properties)
        self.resources.append(
            RecordedResource(
                type=request.type,
                name=request.name,
                urn=urn,
                inputs=dict(inputs),
                custom=bool(getattr(request, "custom", True)),
                parent=request.parent,
                provider=request.provider,
                providers=dict(getattr(request, "providers", {}) or {}),
                dependencies=list(getattr(request, "dependencies", []) or []),
                protect=bool(getattr(request, "protect", False)),
                id=id_,
                version=str(getattr(request, "version", "") or ""),
                additional_secret_outputs=list(getattr(request, "additionalSecretOutputs", []) or []),
                retain_on_delete=bool(getattr(request, "retainOnDelete", False)),
            )
        )

    # -- queries ----------------------------------------------------------------------------------------------
    def of_type(self, type_token: str) -> list[RecordedResource]:
        """Every recorded resource of one type token (``"kubernetes:apps/v1:Deployment"``)."""
        return resources_of_type(self.resources, type_token)

    def find(self, type_token: str, name: str) -> RecordedResource:
        return find_resource(self.resources, type_token, name)

    def run(self, program: Callable[[], Any]) -> list[RecordedResource]:
        """Run a Pulumi program function to completion and return the resources it registered."""
        return run_program(program, self)

    def reset(self) -> None:
        self.resources.clear()
        self.calls.clear()


# -- running programs and reading outputs ---------------------------------------------------------------------


def _sync_await(awaitable: Any) -> Any:
    from pulumi.runtime.sync_await import _sync_await as sync_await

    return sync_await(awaitable)


def run_program(program: Callable[[], Any], mocks: PulumiMocks | None = None) -> list[RecordedResource]:
    """Run ``program`` the way the engine runs a stack (waiting for every registration) and return what it created.

    Needs :func:`pulumi_mocks` (or your own ``set_mocks``) to be active. When ``mocks`` is given only the resources
    registered by this run are returned.
    """
    from pulumi.runtime.settings import SETTINGS
    from pulumi.runtime.stack import run_pulumi_func

    start = len(mocks.resources) if mocks is not None else 0
    SETTINGS.rpc_manager.clear()
    SETTINGS.outputs.clear()
    _sync_await(run_pulumi_func(program))
    return list(mocks.resources[start:]) if mocks is not None else []


def await_output(output: Any) -> Any:
    """The value of an Output (or plain value) once the mocked engine has resolved it; unknowns become ``None``."""
    return _sync_await(pulumi.Output.from_input(output).future())


def output_resources(output: Any) -> set[pulumi.Resource]:
    """The resources an Output waits for: whatever uses it is created after them."""
    return set(_sync_await(pulumi.Output.from_input(output).resources()))


def output_is_secret(output: Any) -> bool:
    """Whether an Output is marked secret."""
    return bool(_sync_await(pulumi.Output.from_input(output).is_secret()))


def is_secret(value: Any) -> bool:
    """Whether a recorded input value was sent to the engine as a secret."""
    return _rpc.is_rpc_secret(value)


def unwrap_secret(value: Any) -> Any:
    """A recorded input value with its secret marker removed (values that are not secret pass through)."""
    return _rpc.unwrap_rpc_secret(value) if _rpc.is_rpc_secret(value) else value


def resources_of_type(resources: Iterable[RecordedResource], type_token: str) -> list[RecordedResource]:
    """The recorded resources of one type token, in registration order."""
    return [r for r in resources if r.type == type_token]


def find_resource(resources: Iterable[RecordedResource], type_token: str, name: str) -> RecordedResource:
    """The one recorded resource with this type and Pulumi name; fails with the names that do exist."""
    candidates = resources_of_type(resources, type_token)
    for r in candidates:
        if r.name == name:
            return r
    raise AssertionError(f"no {type_token} named {name!r}; registered: {sorted(r.name for r in candidates)}")


@contextlib.contextmanager
def mocked_engine(project: str = "project", stack: str = "stack", *, preview: bool = False) -> Iterator[PulumiMocks]:
    """Pulumi mocks on a fresh event loop for the duration of a ``with`` block (scripts, benchmarks, unittest).

    Stack config set inside the block (``pulumi.runtime.set_all_config``) is restored afterwards.
    """
    from pulumi.runtime import config as _config
    from pulumi.runtime import settings as _settings
    from pulumi.runtime.stack import wait_for_rpcs

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    mocks = PulumiMocks()
    _settings.ROOT.set(None)  # a fresh Stack resource, not one bound to a closed loop
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=preview, monitor=_RecordingMonitor(mocks))
    _sync_await(wait_for_rpcs())  # register the root Stack now, whether or not a program runs
    saved_config = dict(_config.CONFIG.get())
    saved_secret_keys = list(_config._SECRET_KEYS.get())
    try:
        yield mocks
    finally:
        pulumi.runtime.set_all_config(saved_config, saved_secret_keys)
        _settings.ROOT.set(None)
        loop.close()
        asyncio.set_event_loop(None)


@pytest.fixture
def pulumi_mocks() -> Iterator[PulumiMocks]:
    """A fresh event loop and Pulumi mocks for one test; yields the :class:`PulumiMocks` recorder.

    Stack config can be set inside the test with ``pulumi.runtime.set_all_config({"kumeo:namespace": "prod"})``;
    it is cleared afterwards.
    """
    with mocked_engine() as mocks:
        yield mocks


# -- plan assertions ------------------------------------------------------------------------------------------


def _workflow(plan: Plan | WorkflowPlan, workflow: str | None) -> WorkflowPlan:
    if not hasattr(plan, "workflows"):  # duck-typed so the compile stage is not imported here
        return plan
    whole = cast("Plan", plan)
    if workflow is not None:
        return whole.workflow(workflow)
    workflows = whole.workflows
    if len(workflows) != 1:
        raise AssertionError(f"the plan has {len(workflows)} workflows; say which one with workflow=")
    return workflows[0]


def assert_plan_has_agent(
    plan: Plan | WorkflowPlan, agent_id: str, *, kind: str | None = None, workflow: str | None = None
) -> AgentPlan:
    """Fail unless the plan has an agent with this id (and kind); returns the AgentPlan for further checks."""
    wf = _workflow(plan, workflow)
    ids = [a.id for a in wf.agents]
    if agent_id not in ids:
        raise AssertionError(f"workflow {wf.name!r} has no agent {agent_id!r}; agents: {ids}")
    agent = wf.agent(agent_id)
    if kind is not None and agent.kind != kind:
        raise AssertionError(f"agent {agent_id!r} is a {agent.kind}, expected {kind}")
    return agent


def assert_plan_has_stream(plan: Plan | WorkflowPlan, name: str, *, workflow: str | None = None) -> Any:
    """Fail unless the plan declares a JetStream stream with this name; returns its StreamPlan."""
    wf = _workflow(plan, workflow)
    for s in wf.streams:
        if s.name == name:
            return s
    raise AssertionError(f"workflow {wf.name!r} has no stream {name!r}; streams: {[s.name for s in wf.streams]}")


def assert_plan_has_consumer(
    plan: Plan | WorkflowPlan, agent_id: str, *, workflow: str | None = None
) -> list[Any]:
    """Fail unless the agent has at least one durable consumer; returns its ConsumerPlans."""
    agent = assert_plan_has_agent(plan, agent_id, workflow=workflow)
    if not agent.consumers:
        raise AssertionError(f"agent {agent_id!r} has no consumer")
    return list(agent.consumers)


def assert_plan_has_kubernetes_object(
    plan: Plan | WorkflowPlan, kind: str, name: str, *, workflow: str | None = None
) -> dict[str, Any]:
    """Fail unless the plan has a Kubernetes object of this kind and name; returns the object dict."""
    wf = _workflow(plan, workflow)
    for obj in wf.kubernetes:
        if obj.get("kind") == kind and obj.get("metadata", {}).get("name") == name:
            return obj
    present = sorted(f"{o.get('kind')}/{o.get('metadata', {}).get('name')}" for o in wf.kubernetes)
    raise AssertionError(f"workflow {wf.name!r} has no {kind} {name!r}; objects: {present}")

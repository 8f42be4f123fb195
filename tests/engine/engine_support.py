"""Helpers for the engine tests: the locally built Pulumi toolchain, a stack project in a temporary directory, the
``pulumi`` CLI run as a child process, its ``--json`` previews read step by step, and a real JetStream server.

Nothing here downloads anything: the engine, the language host, the dynamic-provider launcher and the Kubernetes
provider come from ``make toolchain`` (``.toolchain/bin``), plugin acquisition is disabled, the state lives in a
``file://`` backend under a temporary directory and ``PULUMI_HOME`` is a temporary directory too, so ``~/.pulumi``
is never touched. The Kubernetes provider renders YAML into a directory (``renderYamlToDirectory``) instead of
talking to a cluster; the JetStream dynamic providers talk to a real nats-server.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

REPO = Path(__file__).resolve().parents[2]
#: Where ``make toolchain`` puts the binaries (KUMEO_TOOLCHAIN_BIN points elsewhere, e.g. a CI cache).
TOOLCHAIN_BIN = Path(os.environ.get("KUMEO_TOOLCHAIN_BIN") or REPO / ".toolchain" / "bin")
EXAMPLE_DIR = REPO / "examples" / "fraud_detection"
EXAMPLE_FILE = "fraud_detection.kumeo"
POLICY_DIR = REPO / "policy"

#: What the tests start: the CLI, the Python language host (and the script it runs programs with), the launcher of
#: Python dynamic providers, and the Kubernetes provider.
REQUIRED_BINARIES = (
    "pulumi",
    "pulumi-language-python",
    "pulumi-language-python-exec",
    "pulumi-resource-pulumi-python",
    "pulumi-resource-kubernetes",
)

#: The virtualenv running the tests: Kumeo, pulumi, pulumi_kubernetes, nats-py and pulumi_policy are installed there.
VENV = Path(sys.prefix)

PASSPHRASE = "test-passphrase"
#: Dynamic resources are ``pulumi-python:dynamic:Resource`` or, with a module and name,
#: ``pulumi-python:dynamic/<module>:<Name>``.
DYNAMIC_TYPE_PREFIX = "pulumi-python:dynamic"
COMPONENT_TYPE = "kumeo:index:Workflow"
#: Steps that change nothing.
NO_CHANGE = frozenset({"same", "read", "refresh"})
#: Steps that delete something (a replacement deletes the old resource, before or after creating the new one).
DESTRUCTIVE = frozenset({"replace", "create-replacement", "delete-replaced", "delete", "discard", "discard-replaced"})

T = TypeVar("T")


def missing_binaries() -> list[str]:
    return [name for name in REQUIRED_BINARIES if not os.access(TOOLCHAIN_BIN / name, os.X_OK)]


# -- the environment every pulumi (and kumeo) command runs in -----------------------------------------------------


def engine_environment(pulumi_home: Path) -> dict[str, str]:
    """``os.environ`` without any PULUMI_* setting of the developer's, with the toolchain first on PATH.

    The venv's ``bin/`` is taken off PATH (and VIRTUAL_ENV unset): ``make test`` runs ``.venv/bin/python -m pytest``
    without activating the venv, so nothing may rely on ``python3`` on PATH being the venv's; the Pulumi.yaml
    projects name the venv explicitly (``runtime.options.virtualenv``).
    """
    venv_bin = str(VENV / "bin")
    path = [str(TOOLCHAIN_BIN)] + [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_") and k not in ("VIRTUAL_ENV",)}
    env.update(
        PATH=os.pathsep.join(path),
        PULUMI_HOME=str(pulumi_home),
        PULUMI_SKIP_UPDATE_CHECK="true",
        PULUMI_CONFIG_PASSPHRASE=PASSPHRASE,
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
        # Plain-text state files, so the secret test can search them.
        PULUMI_DIY_BACKEND_GZIP="false",
        PYTHONDONTWRITEBYTECODE="1",
    )
    # Kubernetes settings of the developer's must not reach the render-only provider.
    env.pop("KUBECONFIG", None)
    return env


class CommandFailed(AssertionError):
    """A command exited non-zero; the message carries its command line, exit status, stdout and stderr."""

    def __init__(self, result: subprocess.CompletedProcess[str]) -> None:
        self.result = result
        super().__init__(describe_result(result))


def describe_result(result: subprocess.CompletedProcess[str], limit: int = 12000) -> str:
    def tail(text: str | None) -> str:
        text = text or ""
        return text if len(text) <= limit else "…" + text[-limit:]

    return (
        f"`{' '.join(map(str, result.args))}` exited with status {result.returncode}\n"
        f"--- stdout ---\n{tail(result.stdout)}\n--- stderr ---\n{tail(result.stderr)}"
    )


#: (command line, seconds) of every command run, for the timing summary.
TIMINGS: list[tuple[str, float]] = []


def run_command(
    args: list[str], *, cwd: Path, env: Mapping[str, str], check: bool = True, timeout: float = 300,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    try:
        result = subprocess.run(
            args, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout,
            input=input if input is not None else "", check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"`{' '.join(args)}` did not finish within {timeout}s\n--- stdout ---\n{_text(exc.stdout)[-8000:]}\n"
            f"--- stderr ---\n{_text(exc.stderr)[-8000:]}"
        ) from None
    finally:
        TIMINGS.append((" ".join(args[:3]), time.monotonic() - started))
    if check and result.returncode != 0:
        raise CommandFailed(result)
    return result


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


# -- a stack project ----------------------------------------------------------------------------------------------


MAIN_PY = '''\
"""Test stack: the fraud-detection workflow, Kubernetes objects rendered to YAML files, streams on a real server."""

import pulumi
import pulumi_kubernetes

from kumeo_iac.components import Workflow

RENDER_DIR = {render_dir!r}
WORKFLOW_FILE = {workflow_file!r}

render = pulumi_kubernetes.Provider("render", render_yaml_to_directory=RENDER_DIR)
workflow = Workflow.from_file("fraud", WORKFLOW_FILE, opts=pulumi.ResourceOptions(providers=[render]))

pulumi.export("namespace", workflow.namespace)
pulumi.export("streams", workflow.stream_names)
pulumi.export("consumers", workflow.consumer_names)
pulumi.export("subjects", workflow.subjects)
pulumi.export("deployments", workflow.deployments)
pulumi.export("planDigest", workflow.plan_digest)
'''


def copy_example(target: Path) -> Path:
    """Copy examples/fraud_detection (the .kumeo file, its models and rules) to ``target``; return the .kumeo path."""
    shutil.copytree(EXAMPLE_DIR, target, ignore=shutil.ignore_patterns(".kumeo", "__pycache__", "*.pyc"))
    return target / EXAMPLE_FILE


class Stack:
    """A Pulumi project directory with one stack, on a ``file://`` backend of its own."""

    def __init__(self, root: Path, env: Mapping[str, str], *, project: str, stack: str = "dev") -> None:
        self.root = root
        self.project_dir = root / "project"
        self.workflow_dir = root / "workflow"
        self.render_dir = root / "rendered"
        self.backend_dir = root / "backend"
        self.project = project
        self.stack = stack
        self.env = {**env, "PULUMI_BACKEND_URL": f"file://{self.backend_dir}"}

    @property
    def workflow_file(self) -> Path:
        return self.workflow_dir / EXAMPLE_FILE

    def create(self, config: Mapping[str, str] | None = None) -> Stack:
        """Write the project, copy the example, ``pulumi stack init`` and set ``config`` (key → value)."""
        self.project_dir.mkdir(parents=True)
        self.backend_dir.mkdir(parents=True)
        self.render_dir.mkdir(parents=True)
        copy_example(self.workflow_dir)
        pulumi_yaml = {
            "name": self.project,
            "description": "Kumeo engine test stack",
            "runtime": {"name": "python", "options": {"toolchain": "pip", "virtualenv": str(VENV)}},
        }
        (self.project_dir / "Pulumi.yaml").write_text(yaml.safe_dump(pulumi_yaml, sort_keys=False))
        (self.project_dir / "__main__.py").write_text(
            MAIN_PY.format(render_dir=str(self.render_dir), workflow_file=str(self.workflow_file))
        )
        self.pulumi("stack", "init", self.stack, "--secrets-provider", "passphrase")
        for key, value in dict(config or {}).items():
            self.config_set(key, value)
        return self

    # -- the CLI ------------------------------------------------------------------------------------------------

    def pulumi(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``pulumi ARGS --non-interactive`` in the project directory (``--stack`` added to stack commands)."""
        argv = ["pulumi", *args, "--non-interactive"]
        if args and args[0] in ("preview", "up", "refresh", "destroy", "config", "stack") and args[:2] != (
            "stack", "init"
        ):
            argv += ["--stack", self.stack]
        return run_command(argv, cwd=self.project_dir, env=self.env, check=check, timeout=timeout)

    def config_set(self, key: str, value: str, *, secret: bool = False) -> None:
        self.pulumi("config", "set", *(["--secret"] if secret else ["--plaintext"]), key, value)

    def preview(self, *extra: str, check: bool = True) -> Preview:
        """``pulumi preview --json``, parsed."""
        result = self.pulumi("preview", "--json", *extra, check=False)
        preview = Preview.parse(result)
        if check and result.returncode != 0:
            raise AssertionError(
                f"`{' '.join(result.args)}` exited with status {result.returncode}\n--- steps and diagnostics ---\n"
                f"{preview.summary()}\n--- stderr ---\n{result.stderr[-8000:]}"
            )
        return preview

    def up(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.pulumi("up", "--yes", "--skip-preview", *extra)

    def refresh(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.pulumi("refresh", "--yes", *extra)

    def destroy(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.pulumi("destroy", "--yes", "--skip-preview", *extra)

    def outputs(self, *extra: str) -> dict[str, Any]:
        return json.loads(self.pulumi("stack", "output", "--json", *extra).stdout)

    def export(self, *extra: str) -> dict[str, Any]:
        return json.loads(self.pulumi("stack", "export", *extra).stdout)

    def urns(self, type_prefix: str) -> list[str]:
        """The URNs of the resources in the state whose type starts with ``type_prefix``."""
        resources = self.export()["deployment"].get("resources") or []
        return [r["urn"] for r in resources if r["type"].startswith(type_prefix)]

    def refresh_jetstream(self, *extra: str) -> subprocess.CompletedProcess[str]:
        """``pulumi refresh --yes`` of the JetStream resources (``--target`` each): the Kubernetes provider, which
        renders YAML instead of talking to a cluster, cannot read objects back (its Read fails with "failed to read
        resource state due to unreachable cluster")."""
        targets = [arg for urn in self.urns(DYNAMIC_TYPE_PREFIX) for arg in ("--target", urn)]
        assert targets, "the state holds no JetStream resources"
        return self.refresh(*targets, *extra)

    # -- what the Kubernetes provider wrote ---------------------------------------------------------------------

    def rendered(self) -> dict[tuple[str, str], Path]:
        return rendered_objects(self.render_dir)


def rendered_objects(render_dir: Path) -> dict[tuple[str, str], Path]:
    """``(kind, name)`` → file, for every YAML file the Kubernetes provider rendered (``<dir>/1-manifest/*.yaml``;
    CRDs would go to ``0-crd/``)."""
    found: dict[tuple[str, str], Path] = {}
    for path in sorted(render_dir.glob("*/*.yaml")):
        obj = yaml.safe_load(path.read_text())
        found[(obj["kind"], obj["metadata"]["name"])] = path
    return found


# -- reading `pulumi preview --json` ------------------------------------------------------------------------------


class Step:
    """One step of a ``--json`` preview: ``op``, ``urn``, the type and the object it is about."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw
        self.op: str = raw.get("op", "")
        self.urn: str = raw.get("urn", "")
        state = raw.get("newState") or raw.get("oldState") or {}
        self.type: str = state.get("type") or self.urn.split("::")[-2].split("$")[-1]
        self.inputs: Mapping[str, Any] = state.get("inputs") or {}
        self.outputs: Mapping[str, Any] = state.get("outputs") or {}

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]

    @property
    def key(self) -> tuple[str, str] | None:
        """``(kind, name)`` of the object: ``("Deployment", "fraud-detection-explain")``, ``("stream", "KUMEO_X")``,
        ``("consumer", "durable")``, ``("kv", "bucket")``; None for the stack, components and providers."""
        if self.type.startswith("kubernetes:"):
            metadata = self.inputs.get("metadata") or {}
            return (self.type.rsplit(":", 1)[-1], str(metadata.get("name")))
        if self.type.startswith(DYNAMIC_TYPE_PREFIX):
            kind = self.type.rsplit(":", 1)[-1]
            config = self.inputs.get("config") or {}
            if kind == "KeyValue" or "bucket" in config:
                return ("kv", str(config.get("bucket")))
            if kind == "Consumer" or "durable_name" in config:
                return ("consumer", str(config.get("durable_name") or config.get("name")))
            if kind == "Stream" or "subjects" in config:
                return ("stream", str(config.get("name")))
            return (kind, self.name)
        return None

    @property
    def detailed_diff(self) -> dict[str, Any]:
        return dict(self.raw.get("detailedDiff") or {})

    @property
    def diff_keys(self) -> list[str]:
        """The properties the step changes: the provider's detailedDiff keys, else the engine's diffReasons, else
        the input paths whose old and new values differ (dynamic providers report no detailed diff)."""
        keys = sorted(self.detailed_diff) or list(self.raw.get("diffReasons") or [])
        if keys:
            return keys
        old = (self.raw.get("oldState") or {}).get("inputs")
        new = (self.raw.get("newState") or {}).get("inputs")
        if old is None or new is None:
            return []
        return sorted(p for p in differing_paths(old, new) if p != "__provider")

    @property
    def replace_keys(self) -> list[str]:
        return list(self.raw.get("replaceReasons") or [])

    def __repr__(self) -> str:
        shown = f" {self.key[0]} {self.key[1]}" if self.key else ""
        diff = f" diff={self.diff_keys}" if self.diff_keys else ""
        replace = f" replaceReasons={self.replace_keys}" if self.replace_keys else ""
        return f"<{self.op}{shown} {self.type}{diff}{replace}>"


def differing_paths(old: Any, new: Any, prefix: str = "") -> Iterator[str]:
    """The dotted paths where two JSON values differ (``config.max_age``)."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new)):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                yield path
            else:
                yield from differing_paths(old[key], new[key], path)
    elif old != new:
        yield prefix


class Preview:
    """A parsed ``pulumi preview --json`` (or ``refresh --preview-only --json``)."""

    def __init__(self, data: Mapping[str, Any], result: subprocess.CompletedProcess[str]) -> None:
        self.data = data
        self.result = result
        self.steps = [Step(s) for s in data.get("steps") or []]

    @classmethod
    def parse(cls, result: subprocess.CompletedProcess[str]) -> Preview:
        try:
            data = json.loads(result.stdout)
        except ValueError:
            raise AssertionError(f"the preview did not print JSON\n{describe_result(result)}") from None
        return cls(data, result)

    @property
    def diagnostics(self) -> list[str]:
        return [f"{d.get('severity')}: {d.get('message', '').strip()}" for d in self.data.get("diagnostics") or []]

    def errors(self) -> str:
        """The first line of each error diagnostic (Python tracebacks of the program left out)."""
        lines = [d.splitlines()[0] for d in self.diagnostics if d.startswith("error")]
        return "\n".join(lines) or f"(no error diagnostics; stderr: {self.result.stderr[-2000:]})"

    def changes(self) -> list[Step]:
        """The steps that change something."""
        return [s for s in self.steps if s.op not in NO_CHANGE]

    def by_key(self) -> dict[tuple[str, str], list[Step]]:
        out: dict[tuple[str, str], list[Step]] = {}
        for s in self.steps:
            if s.key is not None:
                out.setdefault(s.key, []).append(s)
        return out

    def ops(self) -> dict[tuple[str, str], set[str]]:
        return {k: {s.op for s in steps} for k, steps in self.by_key().items()}

    def summary(self) -> str:
        """The steps that change something, then the engine's diagnostics (warnings and errors)."""
        lines = [repr(s) for s in self.changes()] or ["(no changes)"]
        return "\n".join(lines + self.diagnostics)


# -- what the component should register: the same file compiled by kumeo_iac ------------------------------------


def expected_objects(workflow_file: Path, nats_url: str, secrets: Iterable[str] = ()) -> set[tuple[str, str]]:
    """``(kind, name)`` of every stream, consumer, KV bucket and Kubernetes object compiled from ``workflow_file``."""
    from kumeo_iac.compile import PlatformSettings, compile_program
    from kumeo_iac.lang import parse_file
    from kumeo_iac.manifests import workflow_manifests

    base_dir = workflow_file.parent
    program = parse_file(str(workflow_file)).program
    (plan,) = compile_program(program, base_dir=base_dir, settings=PlatformSettings(nats_url=nats_url)).workflows
    expected = {("stream", s.name) for s in plan.streams}
    expected |= {("consumer", c.durable) for c in plan.consumers}
    expected |= {("kv", kv.bucket) for kv in plan.key_values}
    expected |= {(o["kind"], o["metadata"]["name"]) for o in workflow_manifests(plan, base_dir).objects}
    if list(secrets):
        expected.add(("Secret", f"{plan.slug}-secrets"))
    return expected


def compiled_plan(workflow_file: Path, nats_url: str) -> Any:
    from kumeo_iac.compile import PlatformSettings, compile_program
    from kumeo_iac.lang import parse_file

    program = parse_file(str(workflow_file)).program
    (plan,) = compile_program(
        program, base_dir=workflow_file.parent, settings=PlatformSettings(nats_url=nats_url)
    ).workflows
    return plan


# -- the JetStream server, from a synchronous test ----------------------------------------------------------------


def on_server(url: str, action: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``action(js)`` against the server and return its result."""
    import nats

    async def run() -> T:
        nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0)
        try:
            return await action(nc.jetstream())
        finally:
            await nc.close()

    return asyncio.run(run())


def stream_names(url: str) -> set[str]:
    async def names(js: Any) -> set[str]:
        return {info.config.name for info in await js.streams_info()}

    return on_server(url, names)


def stream_info(url: str, name: str) -> Any:
    """The stream's StreamInfo, or None when there is no such stream."""
    from nats.js.errors import NotFoundError

    async def info(js: Any) -> Any:
        try:
            return await js.stream_info(name)
        except NotFoundError:
            return None

    return on_server(url, info)


def consumer_info(url: str, stream: str, durable: str) -> Any:
    """The consumer's ConsumerInfo, or None when there is no such consumer."""
    from nats.js.errors import NotFoundError

    async def info(js: Any) -> Any:
        try:
            return await js.consumer_info(stream, durable)
        except NotFoundError:
            return None

    return on_server(url, info)


def consumers_created(url: str, plan: Any) -> dict[str, Any]:
    out = {}
    for c in plan.consumers:
        info = consumer_info(url, c.stream, c.durable)
        out[f"{c.stream}/{c.durable}"] = info.created if info is not None else None
    return out


def publish_marks(url: str, plan: Any) -> dict[str, tuple[int, bytes]]:
    """Publish one message into every stream and one value into every KV bucket; return what each holds."""

    async def publish(js: Any) -> dict[str, tuple[int, bytes]]:
        held = {}
        for s in plan.streams:
            subject = s.config["subjects"][0].replace(">", "mark").replace("*", "mark")
            await js.publish(subject, f"mark for {s.name}".encode())
            info = await js.stream_info(s.name)
            held[s.name] = (info.state.messages, (await js.get_msg(s.name, info.state.last_seq)).data)
        for kv in plan.key_values:
            bucket = await js.key_value(kv.bucket)
            await bucket.put("mark", b"kept")
            held[f"KV_{kv.bucket}"] = (1, (await bucket.get("mark")).value)
        return held

    return on_server(url, publish)


def held_data(url: str, plan: Any) -> dict[str, tuple[int, bytes] | None]:
    from nats.js.errors import NotFoundError

    async def read(js: Any) -> dict[str, tuple[int, bytes] | None]:
        held: dict[str, tuple[int, bytes] | None] = {}
        for s in plan.streams:
            try:
                info = await js.stream_info(s.name)
                last = await js.get_msg(s.name, info.state.last_seq) if info.state.messages else None
                held[s.name] = (info.state.messages, last.data if last else b"")
            except NotFoundError:
                held[s.name] = None
        for kv in plan.key_values:
            try:
                bucket = await js.key_value(kv.bucket)
                held[f"KV_{kv.bucket}"] = (1, (await bucket.get("mark")).value)
            except NotFoundError:
                held[f"KV_{kv.bucket}"] = None
        return held

    return on_server(url, read)


def secret_spellings(value: str) -> dict[str, str]:
    """How a secret could appear in a file: as is, base64 (a Kubernetes Secret's ``data``), JSON-escaped."""
    b64 = base64.b64encode(value.encode()).decode()
    return {"plain text": value, "base64": b64.rstrip("="), "JSON-escaped": json.dumps(value)[1:-1]}


def files_containing(root: Path, needle: str) -> Iterator[Path]:
    data = needle.encode()
    for path in sorted(root.rglob("*")):
        if path.is_file() and data in path.read_bytes():
            yield path

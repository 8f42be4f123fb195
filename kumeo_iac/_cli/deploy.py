"""``kumeo preview|up|destroy PATH --stack NAME`` (Pulumi Automation API, inline program) and ``kumeo new NAME``.

The file is checked first (problems print gcc-style, exit 1), then the ``pulumi`` CLI is looked for (missing: a
message saying what to install, exit 2), and only then is Pulumi driven. Pulumi's own output streams to stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kumeo_iac.errors import KumeoValidationError

__all__ = ["run_destroy", "run_new", "run_preview", "run_up", "scaffold"]


def run_preview(args: argparse.Namespace) -> int:
    return _run("preview", args)


def run_up(args: argparse.Namespace) -> int:
    return _run("up", args)


def run_destroy(args: argparse.Namespace) -> int:
    return _run("destroy", args)


def _run(operation: str, args: argparse.Namespace) -> int:
    path = Path(args.path)
    if not path.is_file():
        print(f"kumeo: error: {path}: no such file", file=sys.stderr)
        return 1
    if path.suffix == ".kumeo" and operation != "destroy":
        _check(path)  # a KumeoError here is printed gcc-style by the CLI boundary (exit 1)

    from kumeo_iac.components._automation import PULUMI_MISSING, pulumi_cli

    if pulumi_cli() is None:
        print(f"kumeo: error: {PULUMI_MISSING}", file=sys.stderr)
        return 2

    from pulumi import automation as auto

    from kumeo_iac.components._automation import select_stack

    try:
        stack = select_stack(path, args.stack, getattr(args, "config", None) or ())
        if operation == "preview":
            result = stack.preview(on_output=print)
            print(f"kumeo: preview of stack {args.stack!r}: {_changes(result.change_summary)}", file=sys.stderr)
        elif operation == "up":
            result = stack.up(on_output=print)
            print(f"kumeo: stack {args.stack!r} updated: {_changes(result.summary.resource_changes)}",
                  file=sys.stderr)
        else:
            stack.destroy(on_output=print)
            print(f"kumeo: stack {args.stack!r} destroyed (remove it with `pulumi stack rm {args.stack}`)",
                  file=sys.stderr)
    except FileNotFoundError:  # the CLI vanished between the check and the call
        print(f"kumeo: error: {PULUMI_MISSING}", file=sys.stderr)
        return 2
    except auto.CommandError as exc:
        print(f"kumeo: error: pulumi {operation} failed:{exc}", file=sys.stderr)
        return 1
    return 0


def _check(path: Path) -> None:
    from kumeo_iac.lang import parse_file
    from kumeo_iac.validate import validate

    program = parse_file(str(path)).program
    diagnostics = validate(program, base_dir=str(path.parent), strict_files=True)
    if any(d.is_error for d in diagnostics):
        raise KumeoValidationError(diagnostics)
    for d in diagnostics:
        print(d.format(), file=sys.stderr)


def _changes(summary: object) -> str:
    if not summary:
        return "no changes"
    return ", ".join(f"{n} {op}" for op, n in sorted(dict(summary).items()))  # type: ignore[call-overload]


# -- kumeo new ------------------------------------------------------------------------------------------------


def run_new(args: argparse.Namespace) -> int:
    target = Path(args.dir) if getattr(args, "dir", None) else Path(args.name)
    try:
        written = scaffold(args.name, target)
    except FileExistsError as exc:
        print(f"kumeo: error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    print(
        f"\nNext: cd {target} && python -m venv venv && venv/bin/pip install -r requirements.txt\n"
        f"      venv/bin/pytest tests        # unit tests under Pulumi mocks\n"
        f"      pulumi stack init dev && pulumi config set kumeo:namespace {_slug(args.name)} && pulumi preview",
        file=sys.stderr,
    )
    return 0


def _slug(name: str) -> str:
    from kumeo_iac.compile._names import slugify

    return slugify(name)


def _workflow_name(name: str) -> str:
    from kumeo_iac.compile._names import words

    return "".join(w.capitalize() for w in words(name)) or "Workflow"


def scaffold(name: str, target: Path) -> list[Path]:
    """Write a new Pulumi project using Kumeo into ``target`` (which must be empty or absent); returns the files."""
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} is not empty; choose another --dir")
    slug = _slug(name)
    files = {
        "Pulumi.yaml": PULUMI_YAML.format(slug=slug),
        "__main__.py": MAIN_PY.format(slug=slug),
        f"{slug}.kumeo": WORKFLOW_KUMEO.format(workflow=_workflow_name(name), slug=slug),
        "requirements.txt": REQUIREMENTS_TXT,
        "tests/test_stack.py": TEST_STACK_PY.format(slug=slug),
        ".gitignore": "venv/\n__pycache__/\n*.pyc\n.pytest_cache/\n.kumeo/\n",
    }
    written = []
    for relative, text in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


PULUMI_YAML = """\
name: {slug}
description: A Kumeo agent workflow on NATS JetStream and Kubernetes
runtime:
  name: python
  options:
    toolchain: pip
    virtualenv: venv
# Stack settings (per stack, in Pulumi.<stack>.yaml):
#   pulumi config set kumeo:namespace {slug}
#   pulumi config set kumeo:natsUrl nats://nats.nats.svc.cluster.local:4222
#   pulumi config set --secret kumeo:openaiApiKey sk-...
"""

MAIN_PY = '''\
"""The {slug} stack: one Kumeo workflow deployed to Kubernetes and NATS JetStream."""

from pathlib import Path

import pulumi

from kumeo_iac.components import Workflow

HERE = Path(__file__).parent


def program() -> Workflow:
    """Declare the stack's resources (tests call this under Pulumi mocks)."""
    workflow = Workflow.from_file("{slug}", HERE / "{slug}.kumeo")
    pulumi.export("namespace", workflow.namespace)
    pulumi.export("deployments", workflow.deployments)
    pulumi.export("subjects", workflow.subjects)
    return workflow


if __name__ == "__main__":  # Pulumi runs this file as __main__
    program()
'''

WORKFLOW_KUMEO = """\
// Events arrive on {slug}.in; each is validated and normalised, then published on {slug}.out.
workflow {workflow} {{
  source: NATS("{slug}.in")
  target: NATS("{slug}.out")

  agents: [
    DataProcessor(
      id: "clean",
      input: source,
      config: {{ required_fields: ["id"] }}
    )
  ]

  deployment: {{
    resources: {{ default: {{ cpu: "100m", memory: "128Mi" }} }},
    scaling: {{ min_replicas: 1, max_replicas: 2 }}
  }}
}}
"""

REQUIREMENTS_TXT = """\
kumeo-iac[pulumi,nats]>=0.1
pulumi>=3.100,<4
pulumi-kubernetes>=4.10,<5
pytest>=8
"""

TEST_STACK_PY = '''\
"""Unit tests of the stack under Pulumi mocks: no engine, cluster or NATS server is needed (mocks stand in)."""

import importlib.util
from pathlib import Path

from kumeo_iac.testing import pulumi_mocks  # noqa: F401  (the fixture)

MAIN = Path(__file__).resolve().parent.parent / "__main__.py"


def load_stack():
    spec = importlib.util.spec_from_file_location("{slug}_stack", MAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_agent_runs_as_a_deployment(pulumi_mocks):
    resources = pulumi_mocks.run(load_stack().program)
    deployments = [r for r in resources if r.type == "kubernetes:apps/v1:Deployment"]
    assert [d.get("metadata.name") for d in deployments] == ["{slug}-clean"]
    container = deployments[0].get("spec.template.spec.containers.0")
    assert container["securityContext"]["runAsNonRoot"] is True
    assert any(e["name"] == "NATS_URL" for e in container["env"])


def test_every_resource_belongs_to_the_workflow(pulumi_mocks):
    resources = pulumi_mocks.run(load_stack().program)
    (workflow,) = [r for r in resources if r.type == "kumeo:index:Workflow"]
    assert all(r.parent == workflow.urn for r in resources if r is not workflow)
'''

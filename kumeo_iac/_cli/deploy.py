"""``kumeo preview|up|destroy PATH --stack NAME`` (Pulumi Automation API, inline program) and ``kumeo new NAME``.

The file is checked first (problems print gcc-style, exit 1), then the ``--config`` pairs against the declared
``kumeo:`` keys, then the ``pulumi`` CLI is looked for (missing: a message saying what to install, exit 2), and
only then is Pulumi driven. Pulumi's own output streams to stdout; Kumeo's lines and the question go to stderr.

``up`` and ``destroy`` show before they act: the preview is printed, then ``Do you want to perform this update?
[y/N]`` is asked when stdin is a terminal; ``--yes`` skips the question, and without a terminal and ``--yes`` they
refuse (exit 1) rather than apply what nobody saw.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["run_destroy", "run_new", "run_preview", "run_up", "scaffold"]


def run_preview(args: argparse.Namespace) -> int:
    return _deploy("preview", args)


def run_up(args: argparse.Namespace) -> int:
    return _deploy("up", args)


def run_destroy(args: argparse.Namespace) -> int:
    return _deploy("destroy", args)


#: operation → (the question asked before it, what the refusal and the cancellation call it)
_QUESTIONS: dict[str, tuple[str, str]] = {
    "up": ("Do you want to perform this update?", "update"),
    "destroy": ("Do you want to perform this destroy?", "destroy"),
}


def _deploy(operation: str, args: argparse.Namespace) -> int:
    path = Path(args.path)
    if not path.is_file():
        return _error(f"{path}: no such file")
    # Destroying needs no program (Pulumi deletes what the stack holds), so a broken file can still be torn down.
    if operation != "destroy" and not _is_pulumi_program(path):
        _check(path)  # a KumeoError here is printed gcc-style by the CLI boundary (exit 1)
    pairs = list(getattr(args, "config", None) or ())
    problems = _config_problems(pairs)
    if problems:
        return _error(*problems)

    from kumeo_iac.components import PULUMI_MISSING, pulumi_cli

    if pulumi_cli() is None:
        _error(PULUMI_MISSING)
        return 2
    if operation in _QUESTIONS and not getattr(args, "yes", False) and not _interactive():
        return _error(_refusal(operation, args.stack))
    return _drive(operation, path, pairs, args)


def _drive(operation: str, path: Path, pairs: list[tuple[str, str]], args: argparse.Namespace) -> int:
    from pulumi import automation as auto

    from kumeo_iac.components import PULUMI_MISSING, select_stack

    try:
        stack = select_stack(path, args.stack, pairs)
        return _OPERATIONS[operation](stack, args)
    except FileNotFoundError:  # the CLI vanished between the check and the call
        _error(PULUMI_MISSING)
        return 2
    except auto.CommandError as exc:
        return _error(f"pulumi {operation} failed: {_pulumi_message(exc)}")


def _preview(stack: Any, args: argparse.Namespace) -> int:
    result = stack.preview(on_output=print, **_pass_through(args))
    _note(f"preview of stack {args.stack!r}: {_changes(result.change_summary)}")
    return 0


def _up(stack: Any, args: argparse.Namespace) -> int:
    with _update_plan(getattr(args, "update_plan", False)) as plan:
        preview = stack.preview(on_output=print, **_pass_through(args), **plan)
        _note(f"preview of stack {args.stack!r}: {_changes(preview.change_summary)}")
        if not _confirmed("up", args):
            return 1
        result = stack.up(on_output=print, **_pass_through(args), **plan)
    _note(f"stack {args.stack!r} updated: {_changes(result.summary.resource_changes, done=True)}")
    return 0


def _destroy(stack: Any, args: argparse.Namespace) -> int:
    preview = stack.preview_destroy(on_output=print, **_pass_through(args))
    _note(f"preview of destroying stack {args.stack!r}: {_changes(preview.change_summary)}")
    if not _confirmed("destroy", args):
        return 1
    stack.destroy(on_output=print, **_pass_through(args))
    _note(f"stack {args.stack!r} destroyed (remove it with `pulumi stack rm {args.stack}`)")
    return 0


_OPERATIONS: dict[str, Callable[[Any, argparse.Namespace], int]] = {
    "preview": _preview, "up": _up, "destroy": _destroy,
}


def _pass_through(args: argparse.Namespace) -> dict[str, Any]:
    """``--diff``, ``--refresh`` and ``--target`` as the Automation API's keyword arguments."""
    targets = list(getattr(args, "target", None) or ())
    return {"diff": bool(getattr(args, "diff", False)), "refresh": bool(getattr(args, "refresh", False)),
            "target": targets or None}


@contextlib.contextmanager
def _update_plan(wanted: bool) -> Iterator[dict[str, str]]:
    """``{"plan": FILE}`` for preview (which saves it) and up (which keeps to it), or ``{}`` without --update-plan."""
    if not wanted:
        yield {}
        return
    with tempfile.TemporaryDirectory(prefix="kumeo-plan-") as tmp:
        yield {"plan": str(Path(tmp) / "plan.json")}


def _confirmed(operation: str, args: argparse.Namespace) -> bool:
    """--yes, or the user answered y to the question; says so on stderr when not."""
    if getattr(args, "yes", False):
        return True
    question, noun = _QUESTIONS[operation]
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    if answer.strip().lower() in ("y", "yes"):
        return True
    if not answer:
        print(file=sys.stderr)
    _note(f"{noun} cancelled: nothing was changed")
    return False


def _interactive() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def _refusal(operation: str, stack: str) -> str:
    noun = _QUESTIONS[operation][1]
    return (f"`kumeo {operation}` shows the preview and asks before it changes stack {stack!r}, but standard input "
            f"is not a terminal, so nobody can answer; pass --yes to {'apply' if operation == 'up' else noun} "
            f"without asking (`kumeo preview` shows what would change)")


def _config_problems(pairs: list[tuple[str, str]]) -> list[str]:
    from kumeo_iac.components import check_config_pairs

    return check_config_pairs(pairs)


def _is_pulumi_program(path: Path) -> bool:
    """A `.py` Pulumi program is run as is by Pulumi; anything else is a workflow file, checked here first."""
    from kumeo_iac._load import is_pulumi_program

    return path.suffix == ".py" and is_pulumi_program(path)


def _check(path: Path) -> None:
    """Load the file as `kumeo render` does (missing files are errors); warnings are printed, errors raised."""
    from kumeo_iac._cli._report import emit
    from kumeo_iac._load import load_file

    loaded = load_file(path, strict_files=True)
    loaded.program_or_raise()
    emit(loaded.diagnostics)


_ORDER = ("create", "update", "replace", "delete", "same")
_DONE = {"create": "created", "update": "updated", "replace": "replaced", "delete": "deleted", "same": "unchanged"}


def _changes(summary: Mapping[Any, int] | None, *, done: bool = False) -> str:
    """``3 to create, 5 unchanged`` (a preview's change summary) or ``3 created, 5 unchanged`` (``done``)."""
    counts = {str(getattr(op, "value", op)): n for op, n in dict(summary or {}).items() if n}
    if not set(counts) - {"same"}:
        return "no changes"
    ordered = sorted(counts, key=lambda op: (_ORDER.index(op) if op in _ORDER else len(_ORDER), op))
    words = [_DONE.get(op, op) if done or op == "same" else f"to {op}" for op in ordered]
    return ", ".join(f"{counts[op]} {word}" for op, word in zip(ordered, words, strict=True))


def _pulumi_message(exc: Exception) -> str:
    """What Pulumi said on stderr (its stdout was already printed as it came)."""
    text = str(exc)
    _, found, stderr = text.partition("\n stderr: ")
    return (stderr if found and stderr.strip() else text).strip()


def _note(text: str) -> None:
    print(f"kumeo: {text}", file=sys.stderr)


def _error(*messages: str) -> int:
    for message in messages:
        print(f"kumeo: error: {message}", file=sys.stderr)
    return 1


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
    print(f"\nNext: cd {target}, then follow its README.md (install, test, preview)", file=sys.stderr)
    return 0


def _slug(name: str) -> str:
    from kumeo_iac.compile import slugify

    return slugify(name)


def _workflow_name(name: str) -> str:
    from kumeo_iac.compile import words

    return "".join(w.capitalize() for w in words(name)) or "Workflow"


def scaffold(name: str, target: Path) -> list[Path]:
    """Write a new Pulumi project using Kumeo into ``target`` (which must be empty or absent); returns the files."""
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} is not empty; choose another --dir")
    slug = _slug(name)
    files = {
        "Pulumi.yaml": pulumi_yaml(slug),
        "__main__.py": MAIN_PY.format(slug=slug),
        f"{slug}.kumeo": WORKFLOW_KUMEO.format(workflow=_workflow_name(name), slug=slug),
        "requirements.txt": REQUIREMENTS_TXT,
        "README.md": project_readme(slug, kumeo_source()),
        "tests/test_stack.py": TEST_STACK_PY.format(slug=slug),
        ".github/workflows/preview.yml": preview_workflow(slug),
        ".gitignore": "venv/\n__pycache__/\n*.pyc\n.pytest_cache/\n.kumeo/\n",
    }
    written = []
    for relative, text in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def pulumi_yaml(slug: str) -> str:
    """The Pulumi.yaml of a new project: the project, then the ``kumeo:`` keys from their one declaration.

    Pulumi lets a project give a ``type`` and a ``default`` only to keys in its own namespace; a key of another
    namespace such as ``kumeo:keda`` may have a ``description`` and a ``value`` (the project-wide default, which a
    stack's own config overrides). So the keys with a constant default are written that way, the others (defaults
    that depend on the workflow, secrets) as comments; Kumeo checks names and types itself when the program runs.
    """
    import textwrap

    import yaml

    from kumeo_iac.components import pulumi_project_comment, pulumi_project_config

    listed = [line for entry in pulumi_project_comment()
              for line in textwrap.wrap(entry, 112, initial_indent="#   ", subsequent_indent="#       ")]
    block = yaml.safe_dump({"config": pulumi_project_config()}, sort_keys=False, width=112, allow_unicode=True)
    return PULUMI_YAML.format(slug=slug) + "\n".join(listed) + "\n" + block


PULUMI_YAML = """\
name: {slug}
description: A Kumeo agent workflow on NATS JetStream and Kubernetes
runtime:
  name: python
  options:
    toolchain: pip
    virtualenv: venv
# Stack configuration: Kumeo reads the `kumeo:` keys below; a key it does not know or a value of the wrong type
# fails the preview with one line naming it. Set them per stack (in Pulumi.<stack>.yaml):
#   pulumi config set kumeo:namespace {slug}
#   pulumi config set kumeo:natsUrl nats://nats.nats.svc.cluster.local:4222
#   pulumi config set --secret kumeo:openaiApiKey sk-...
# Keys whose default depends on the workflow, and secrets (which have no project-wide value):
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

#: The extras: ``pulumi`` (pulumi and pulumi-kubernetes, pinned by kumeo-iac itself) for the stack, ``local`` (an
#: embedded nats-server) for ``kumeo run``; the unit tests need pytest.
KUMEO_REQUIREMENT = "kumeo-iac[pulumi,local]"
REQUIREMENTS_TXT = f"""\
# Kumeo's Pulumi components (they bring pulumi and pulumi-kubernetes) and `kumeo run`. Until kumeo-iac is published,
# install it first from a Kumeo checkout or a wheel built by `make dist` in one (see README.md); pip then finds it.
{KUMEO_REQUIREMENT}>=0.1
pytest>=8
"""


def kumeo_source() -> str | None:
    """Where the running Kumeo can be installed from again: a ``file:`` URL of its checkout or wheel, or None.

    A checkout is the folder holding ``kumeo_iac/`` beside a ``pyproject.toml`` naming kumeo-iac (an editable or
    in-place install); otherwise the installer's record (PEP 610 ``direct_url.json``) names the local wheel or
    folder it came from, when that still exists. None means an index install, where ``requirements.txt`` suffices.
    """
    import json
    from importlib import metadata

    import kumeo_iac

    root = Path(kumeo_iac.__file__).resolve().parent.parent
    project = root / "pyproject.toml"
    if project.is_file() and 'name = "kumeo-iac"' in project.read_text(encoding="utf-8"):
        return root.as_uri()
    try:
        record = metadata.distribution("kumeo-iac").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    if not record:
        return None
    url = str(json.loads(record).get("url", ""))
    if not url.startswith("file://"):
        return None
    from urllib.parse import unquote, urlparse

    return url if Path(unquote(urlparse(url).path)).exists() else None


def project_readme(slug: str, source: str | None) -> str:
    """The README.md of a new project: install (from ``source`` when Kumeo is not on an index), test, deploy."""
    if source is None:
        install = "venv/bin/pip install -r requirements.txt"
        origin = ""
    else:
        install = f'venv/bin/pip install "{KUMEO_REQUIREMENT} @ {source}"\nvenv/bin/pip install -r requirements.txt'
        origin = ORIGIN.format(source=source, requirement=KUMEO_REQUIREMENT)
    return PROJECT_README.format(slug=slug, install=install, origin=origin)


ORIGIN = """
kumeo-iac is not published on PyPI yet, so the second line installs it from where the `kumeo` that wrote this
project came from ({source}). On another machine, use a Kumeo checkout there, or a wheel built in one with
`make dist` (`dist/kumeo_iac-*.whl`): `venv/bin/pip install "{requirement} @ file:///path/to/that.whl"`.
"""

PROJECT_README = """\
# {slug}

A Kumeo workflow, [{slug}.kumeo]({slug}.kumeo), run on this machine by `kumeo run` and deployed by Pulumi
([__main__.py](__main__.py)) to Kubernetes and NATS JetStream.

## Install

Python 3.11 or later; a virtual environment named `venv` (the one Pulumi.yaml names):

```sh
python -m venv venv
{install}
```
{origin}
## Test

Unit tests under Pulumi mocks: no cluster, NATS server or `pulumi` CLI is needed.

```sh
venv/bin/pytest -q tests
venv/bin/kumeo check --strict {slug}.kumeo
```

## Run it on this machine

`kumeo run` starts an embedded nats-server, runs the agents and prints every event that reaches the target
(`{slug}.out`) or a dead-letter subject as one JSON line:

```sh
printf '%s\\n' '{{"id": "e1", "amount": 12}}' '{{"amount": 5}}' > events.jsonl
venv/bin/kumeo run {slug}.kumeo --input events.jsonl
```

## Preview and deploy

With the `pulumi` CLI on PATH, a backend (`pulumi login`) and a cluster in your kubeconfig:

```sh
pulumi stack init dev
pulumi config set kumeo:namespace {slug}
pulumi preview
pulumi up
```

`.github/workflows/preview.yml` runs `kumeo check`, the tests and `pulumi preview --diff` on every pull request.
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


def preview_workflow(slug: str) -> str:
    """The GitHub Actions workflow of a new project: ``kumeo check``, the unit tests, then ``pulumi preview --diff``
    of the stack on every pull request, posted as a PR comment and the job summary (see docs/deploy.md)."""
    return PREVIEW_WORKFLOW.replace("{slug}", slug)


#: ``{slug}`` is replaced (not ``str.format``: the workflow is full of ``${{ … }}``).
PREVIEW_WORKFLOW = """\
# `pulumi preview` of this project on every pull request: `kumeo check` and the unit tests first, then the preview,
# posted as a PR comment (edited in place on each push) and as the job summary.
#
# Settings (Settings → Secrets and variables → Actions):
#   variable PULUMI_BACKEND_URL        a self-managed backend (s3://…, gs://…, azblob://…), with
#   secret   PULUMI_CONFIG_PASSPHRASE  the passphrase of the stack's secrets; or, for Pulumi Cloud instead,
#   secret   PULUMI_ACCESS_TOKEN
#   variable PULUMI_STACK              the stack to preview (default: dev; it must exist, with Pulumi.<stack>.yaml)
#   secret   KUBECONFIG                the kubeconfig of the stack's cluster (or set kubernetes:kubeconfig in the stack)
name: pulumi preview

on:
  pull_request:

permissions:
  contents: read
  pull-requests: write # the preview is posted as a PR comment

concurrency:
  group: pulumi-preview-${{ github.event.pull_request.number }}
  cancel-in-progress: true

jobs:
  preview:
    # Pull requests from forks get neither the secrets nor a token that may comment.
    if: github.event.pull_request.head.repo.full_name == github.repository
    runs-on: ubuntu-latest
    timeout-minutes: 20
    env:
      STACK: ${{ vars.PULUMI_STACK || 'dev' }}
      PULUMI_BACKEND_URL: ${{ vars.PULUMI_BACKEND_URL }}
      PULUMI_CONFIG_PASSPHRASE: ${{ secrets.PULUMI_CONFIG_PASSPHRASE }}
      PULUMI_ACCESS_TOKEN: ${{ secrets.PULUMI_ACCESS_TOKEN }}
    steps:
      - uses: actions/checkout@v4

      - uses: actions/setup-python@v5
        with:
          python-version: "3.12"
          cache: pip

      - name: Install the requirements into venv (the virtualenv Pulumi.yaml names)
        run: |
          python -m venv venv
          venv/bin/pip install -r requirements.txt

      - name: kumeo check
        # Problems print as PATH:LINE:COL: error: MESSAGE; the matcher turns them into annotations on the PR's lines.
        run: |
          cat > "$RUNNER_TEMP/kumeo-matcher.json" <<'EOF'
          {"problemMatcher": [{"owner": "kumeo", "pattern": [{
            "regexp": "^(.+?):(\\\\d+):(\\\\d+): (error|warning): (.*)$",
            "file": 1, "line": 2, "column": 3, "severity": 4, "message": 5}]}]}
          EOF
          echo "::add-matcher::$RUNNER_TEMP/kumeo-matcher.json"
          venv/bin/kumeo check --strict {slug}.kumeo

      - name: Unit tests (Pulumi mocks; no cluster, no NATS)
        run: venv/bin/pytest -q tests

      - name: Backend and cluster credentials
        env:
          KUBECONFIG_DATA: ${{ secrets.KUBECONFIG }}
        run: |
          if [ -z "$PULUMI_BACKEND_URL$PULUMI_ACCESS_TOKEN" ]; then
            echo "::error::no Pulumi backend: set the variable PULUMI_BACKEND_URL and the secret" \\
              "PULUMI_CONFIG_PASSPHRASE, or the secret PULUMI_ACCESS_TOKEN (Pulumi Cloud)"
            exit 1
          fi
          if [ -n "$KUBECONFIG_DATA" ]; then
            printf '%s\\n' "$KUBECONFIG_DATA" > "$RUNNER_TEMP/kubeconfig"
            echo "KUBECONFIG=$RUNNER_TEMP/kubeconfig" >> "$GITHUB_ENV"
          fi

      # Installs the Pulumi CLI, runs `pulumi login` (the backend URL, else Pulumi Cloud with the token), selects the
      # stack (never creates it) and runs `pulumi preview --diff` in it.
      - name: pulumi preview --diff
        uses: pulumi/actions@v6
        with:
          command: preview
          cloud-url: ${{ vars.PULUMI_BACKEND_URL }}
          stack-name: ${{ env.STACK }}
          diff: true
          suppress-progress: true
          comment-on-pr: true
          edit-pr-comment: true
          comment-on-summary: true
          always-include-summary: true
"""

"""The GitHub Actions workflows that preview a stack on pull requests: this repository's
``.github/workflows/preview.yml`` and the one ``kumeo new`` writes into a new project.

Both are linted by the real ``actionlint`` (built by ``make toolchain`` into ``.toolchain/bin``; it also runs
``shellcheck`` on the ``run:`` scripts when ``shellcheck`` is on PATH): no finding is allowed. A missing binary
fails the tests with the command that builds it, never skips them. A deliberately broken copy must get findings, so
the lint is known to check what matters here (the inputs of ``pulumi/actions``, token permissions, expressions).

What the workflows do is checked on their parsed YAML: they run on ``pull_request``, ``kumeo check --strict`` of the
deployed file comes before the preview, the preview is ``pulumi/actions`` with ``command: preview`` and a diff,
posted on the PR, with no more token permissions than that needs. The ``kumeo check`` step's own script is run, and
its problem matcher is shown to match what ``kumeo check`` prints.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TOOLCHAIN_BIN = Path(os.environ.get("KUMEO_TOOLCHAIN_BIN") or REPO / ".toolchain" / "bin")
ACTIONLINT = TOOLCHAIN_BIN / "actionlint"
REPO_WORKFLOW = REPO / ".github" / "workflows" / "preview.yml"
#: The file the root Pulumi project (__main__.py) deploys.
REPO_KUMEO_FILE = "examples/fraud_detection/fraud_detection.kumeo"
PROJECT = "payments"


# -- helpers --------------------------------------------------------------------------------------------------


def actionlint(path: Path, cwd: Path) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """Run actionlint on one workflow file; return the process and its findings (``-format '{{json .}}'``)."""
    if not os.access(ACTIONLINT, os.X_OK):
        pytest.fail(f"actionlint is not built: {ACTIONLINT} is missing; run `make toolchain`", pytrace=False)
    done = subprocess.run([str(ACTIONLINT), "-no-color", "-format", "{{json .}}", str(path)],
                          cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    findings = json.loads(done.stdout) if done.stdout.strip() else []
    return done, findings


def describe(findings: list[dict[str, Any]]) -> str:
    return "\n".join(f"{f['filepath']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]" for f in findings)


def triggers(workflow: dict[Any, Any]) -> Any:
    """The ``on:`` block (YAML 1.1 reads the bare key ``on`` as the boolean true)."""
    return workflow.get("on", workflow.get(True))


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    (job,) = workflow["jobs"].values()
    return job["steps"]


def step_index(all_steps: list[dict[str, Any]], predicate: Any, what: str) -> int:
    found = [i for i, s in enumerate(all_steps) if predicate(s)]
    assert len(found) == 1, f"expected exactly one step that {what}, found {len(found)}"
    return found[0]


def runs(needle: str) -> Any:
    return lambda s: needle in str(s.get("run", ""))


def is_preview(s: dict[str, Any]) -> bool:
    return str(s.get("uses", "")).startswith("pulumi/actions@") and (s.get("with") or {}).get("command") == "preview"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project written by ``kumeo new payments`` (the CLI, as a user runs it)."""
    target = tmp_path_factory.mktemp("new") / PROJECT
    done = subprocess.run([sys.executable, "-m", "kumeo_iac.cli", "new", PROJECT, "--dir", str(target)],
                          capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert str(target / ".github" / "workflows" / "preview.yml") in done.stdout.splitlines()
    return target


def workflows(generated: Path) -> dict[str, tuple[Path, Path, str]]:
    """name → (workflow file, the directory it runs in, the .kumeo file it must check)."""
    return {
        "repository": (REPO_WORKFLOW, REPO, REPO_KUMEO_FILE),
        "kumeo new": (generated / ".github" / "workflows" / "preview.yml", generated, f"{PROJECT}.kumeo"),
    }


WHICH = ["repository", "kumeo new"]


# -- actionlint -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", WHICH)
def test_actionlint_finds_nothing(which: str, generated: Path) -> None:
    path, root, _ = workflows(generated)[which]
    done, findings = actionlint(path, root)
    assert findings == [], f"actionlint on the {which} workflow:\n{describe(findings)}"
    assert done.returncode == 0, done.stdout + done.stderr


BROKEN = [
    # (what is broken, replaced text, replacement, the finding's kind, a word of its message)
    ("a misspelled input of pulumi/actions", "comment-on-pr: true", "comment-on-prs: true", "action", "comment-on-prs"),
    ("an unknown token permission", "pull-requests: write", "pull-request: write", "permissions", "pull-request"),
    ("a PR title pasted into a script", 'echo "KUBECONFIG=$RUNNER_TEMP/kubeconfig"',
     'echo "KUBECONFIG=${{ github.event.pull_request.title }}"', "expression", "untrusted"),
    ("a context that does not exist", "${{ vars.PULUMI_STACK || 'dev' }}", "${{ var.PULUMI_STACK || 'dev' }}",
     "expression", "var"),
]


@pytest.mark.parametrize(("what", "old", "new", "kind", "word"), BROKEN, ids=[b[0] for b in BROKEN])
def test_actionlint_reports_a_broken_workflow(tmp_path: Path, what: str, old: str, new: str, kind: str,
                                              word: str) -> None:
    text = REPO_WORKFLOW.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"the repository workflow no longer contains {old!r}; update this test"
    broken = tmp_path / ".github" / "workflows" / "preview.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(text.replace(old, new), encoding="utf-8")
    done, findings = actionlint(broken, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert any(f["kind"] == kind and word in f["message"] for f in findings), (
        f"{what}: expected a [{kind}] finding mentioning {word!r}, got:\n{describe(findings)}")


# -- what the workflows do ------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", WHICH)
def test_the_workflow_previews_pull_requests_after_kumeo_check(which: str, generated: Path) -> None:
    path, root, kumeo_file = workflows(generated)[which]
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert "pull_request" in triggers(workflow)
    assert (root / kumeo_file).is_file(), f"the workflow checks {kumeo_file}, which does not exist"

    all_steps = steps(workflow)
    command = f"kumeo check --strict {kumeo_file}"
    check = step_index(all_steps, runs(command), f"runs `{command}`")
    credentials = step_index(all_steps, runs('"$PULUMI_BACKEND_URL$PULUMI_ACCESS_TOKEN"'), "checks for a backend")
    preview = step_index(all_steps, is_preview, "is pulumi/actions with command: preview")
    assert check < credentials < preview, "kumeo check, then the credentials, then the preview"
    assert "uses" not in all_steps[check], "kumeo check runs in the job itself, before any Pulumi step"

    # The action logs in (`pulumi login <cloud-url>`, or Pulumi Cloud with the token), selects the stack without
    # creating it (`upsert` left false) and runs `pulumi preview --diff`; the output goes to a PR comment, edited in
    # place, and to the job summary.
    options = all_steps[preview]["with"]
    assert options["cloud-url"] == "${{ vars.PULUMI_BACKEND_URL }}"
    assert options["stack-name"] == "${{ env.STACK }}"
    assert not options.get("upsert")
    assert options["diff"] is True and options["comment-on-pr"] is True and options["edit-pr-comment"] is True
    assert options["comment-on-summary"] is True


@pytest.mark.parametrize("which", WHICH)
def test_the_workflow_has_least_privilege_and_pinned_actions(which: str, generated: Path) -> None:
    path, _, _ = workflows(generated)[which]
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    # Reading the code, and writing the one PR comment; nothing else (jobs add none).
    assert workflow["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert all("permissions" not in job for job in workflow["jobs"].values())
    # Forks get no secrets: their pull requests are skipped rather than failed.
    (job,) = workflow["jobs"].values()
    assert job["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    uses = [s["uses"] for s in steps(workflow) if "uses" in s]
    assert {u.split("@")[0] for u in uses} == {"actions/checkout", "actions/setup-python", "pulumi/actions"}
    assert all(re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", u) for u in uses), uses
    # Secrets reach the job only as the environment variables Pulumi reads.
    env = job["env"]
    assert env["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"
    assert env["PULUMI_BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL }}"


def test_the_generated_workflow_runs_the_projects_unit_tests_before_the_preview(generated: Path) -> None:
    path, _, _ = workflows(generated)["kumeo new"]
    all_steps = steps(yaml.safe_load(path.read_text(encoding="utf-8")))
    install = step_index(all_steps, runs("venv/bin/pip install -r requirements.txt"), "installs requirements.txt")
    tests = step_index(all_steps, runs("venv/bin/pytest -q tests"), "runs the unit tests")
    assert install < tests < step_index(all_steps, is_preview, "is the preview")
    # Pulumi.yaml names the virtualenv the workflow creates.
    project = yaml.safe_load((generated / "Pulumi.yaml").read_text(encoding="utf-8"))
    assert project["runtime"]["options"]["virtualenv"] == "venv"


def test_the_repository_workflow_installs_into_the_virtualenv_pulumi_yaml_names() -> None:
    all_steps = steps(yaml.safe_load(REPO_WORKFLOW.read_text(encoding="utf-8")))
    step_index(all_steps, runs("python -m venv .venv"), "creates .venv")
    step_index(all_steps, runs(".venv/bin/pip install -e '.[pulumi]'"), "installs Kumeo with the pulumi extra")
    project = yaml.safe_load((REPO / "Pulumi.yaml").read_text(encoding="utf-8"))
    assert project["runtime"]["options"]["virtualenv"] == ".venv"
    assert REPO_KUMEO_FILE in (REPO / "__main__.py").read_text(encoding="utf-8").replace('" / "', "/")


# -- the kumeo check step, run -------------------------------------------------------------------------------


BROKEN_KUMEO = """\
workflow Payments {
  source: NATS("payments.in")
  target: NATS("payments.out")
  agents: [ Foo(id: "clean", input: source) ]
}
"""


def test_the_kumeo_check_step_fails_fast_and_its_matcher_annotates_the_line(generated: Path, tmp_path: Path) -> None:
    path, _, kumeo_file = workflows(generated)["kumeo new"]
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    (script,) = [s["run"] for s in steps(workflow) if s.get("name") == "kumeo check"]
    project = tmp_path / "project"
    (project / "venv" / "bin").mkdir(parents=True)
    shim = project / "venv" / "bin" / "kumeo"  # the venv's console script, standing in for `pip install`
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m kumeo_iac.cli "$@"\n')
    shim.chmod(0o755)
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    env = {**os.environ, "RUNNER_TEMP": str(runner_temp), "PYTHONPATH": str(REPO)}

    def run_step() -> subprocess.CompletedProcess[str]:
        # GitHub runs `run:` with `bash -e {0}`.
        return subprocess.run(["bash", "-e", "-c", script], cwd=project, env=env, capture_output=True, text=True,
                              timeout=120, check=False)

    (project / kumeo_file).write_text((generated / kumeo_file).read_text(encoding="utf-8"), encoding="utf-8")
    passed = run_step()
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert f"::add-matcher::{runner_temp / 'kumeo-matcher.json'}" in passed.stdout

    (project / kumeo_file).write_text(BROKEN_KUMEO, encoding="utf-8")
    failed = run_step()
    assert failed.returncode == 1, failed.stdout + failed.stderr
    matcher = json.loads((runner_temp / "kumeo-matcher.json").read_text(encoding="utf-8"))
    (pattern,) = matcher["problemMatcher"][0]["pattern"]
    matched = [m for m in map(re.compile(pattern["regexp"]).match, failed.stderr.splitlines()) if m]
    assert matched, f"the matcher matches no line of:\n{failed.stderr}"
    first = matched[0]
    assert (first.group(pattern["file"]), first.group(pattern["line"]), first.group(pattern["severity"])) == (
        kumeo_file, "4", "error")
    assert "unknown agent kind 'Foo'" in first.group(pattern["message"])


# -- the docs -------------------------------------------------------------------------------------------------


def test_the_docs_show_the_workflow_kumeo_new_writes(generated: Path) -> None:
    """docs/deploy.md, "Previews on pull requests (GitHub Actions)": its ``yaml`` block is the generated workflow."""
    text = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    section = text[text.index("## Previews on pull requests (GitHub Actions)"):]
    section = section[:section.index("\n## ", 1)]
    (block,) = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    written = (generated / ".github" / "workflows" / "preview.yml").read_text(encoding="utf-8")
    assert yaml.safe_load(block) == yaml.safe_load(written), "docs/deploy.md shows another workflow than kumeo new"
    assert block in written, "the docs' copy differs from the generated file (comments or layout)"

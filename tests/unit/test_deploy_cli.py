"""``kumeo preview|up|destroy`` (Automation API, inline program) and ``kumeo new``.

There is no ``pulumi`` CLI on the test machine, so: the missing-CLI path is tested for real; the inline program is
run under Pulumi mocks (``kumeo_iac.testing.PulumiMocks`` stands in for the engine); and the Automation API wiring
is checked against a recording stand-in for ``auto.create_or_select_stack`` (which never deploys anything).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pulumi
import pytest

from kumeo_iac.cli import main
from kumeo_iac.components import _automation
from kumeo_iac.testing import find_resource, resources_of_type

ROOT = Path(__file__).resolve().parents[2]
FRAUD = ROOT / "examples" / "fraud_detection" / "fraud_detection.kumeo"

VALID = """\
workflow Tiny {
  source: NATS("tiny.in")
  target: NATS("tiny.out")
  agents: [ DataProcessor(id: "clean", input: source, config: { required_fields: ["id"] }) ]
}
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.kumeo"
    path.write_text(VALID)
    return path


@pytest.fixture
def no_pulumi_cli(monkeypatch, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert _automation.pulumi_cli() is None


@pytest.mark.parametrize("command", ["preview", "up", "destroy"])
def test_missing_pulumi_cli_is_a_clear_message_and_exit_2(command, tiny, no_pulumi_cli, capsys):
    assert main([command, str(tiny), "--stack", "dev"]) == 2
    err = capsys.readouterr().err
    assert "pulumi` CLI is not installed" in err
    assert "https://www.pulumi.com/docs/install/" in err
    assert "pulumi login --local" in err
    assert "Traceback" not in err


def test_missing_pulumi_cli_in_a_real_process(tiny, tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "kumeo_iac.cli", "up", str(tiny), "--stack", "dev"],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 2, done.stderr
    assert "https://www.pulumi.com/docs/install/" in done.stderr and "Traceback" not in done.stderr


def test_an_invalid_file_fails_gcc_style_before_pulumi_is_needed(tmp_path, no_pulumi_cli, capsys):
    bad = tmp_path / "bad.kumeo"
    bad.write_text('workflow Bad {\n  source: NATS("in")\n'
                   '  agents: [ DataProcessor(id: "a", input: ghost.output) ]\n}\n')
    assert main(["preview", str(bad), "--stack", "dev"]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:3:" in err and "error:" in err and "Traceback" not in err


def test_config_pairs_go_under_kumeo_and_declared_secrets_are_secret():
    config = _automation.stack_config([
        ("namespace", "prod"), ("kumeo:keda", "true"), ("openaiApiKey", "sk-1"), ("secrets.VENDOR", "v"),
        ("natsAuthSeed", "s"), ("kubernetes:context", "kind-dev"),
    ])
    assert config["kumeo:namespace"].value == "prod" and not config["kumeo:namespace"].secret
    assert config["kumeo:keda"].value == "true" and not config["kumeo:keda"].secret
    assert config["kumeo:openaiApiKey"].secret and config["kumeo:secrets.VENDOR"].secret
    assert config["kumeo:natsAuthSeed"].secret
    assert config["kubernetes:context"].value == "kind-dev" and not config["kubernetes:context"].secret


def test_project_name_comes_from_the_workflow(tiny):
    assert _automation.project_name(tiny) == "tiny"
    assert _automation.project_name(FRAUD) == "fraud-detection"


def test_the_inline_program_under_mocks(tiny, pulumi_mocks):
    """Mocks stand in for the engine: the very function the Automation API runs, run here."""
    pulumi.runtime.set_all_config({"kumeo:namespace": "tiny-dev", "kumeo:manageJetStream": "false"})
    resources = pulumi_mocks.run(_automation.workflow_program(tiny))
    workflow = find_resource(resources, "kumeo:index:Workflow", "tiny")
    (deployment,) = resources_of_type(resources, "kubernetes:apps/v1:Deployment")
    assert deployment.parent == workflow.urn
    assert deployment.get("metadata.namespace") == "tiny-dev"


def test_a_kumeo_error_in_the_inline_program_is_one_clean_pulumi_error(tmp_path, pulumi_mocks):
    """Mocks stand in for the engine; Pulumi prints a RunError by its message alone, with no traceback."""
    program = tmp_path / "stack.py"
    # It imports pulumi, so it is a Pulumi program, run as is (a .py without it is a Python workflow, loaded).
    program.write_text("import pulumi\nfrom kumeo_iac.errors import KumeoSpecError\n"
                       "raise KumeoSpecError('agents must be a list')\n")
    with pytest.raises(pulumi.RunError, match=r"^agents must be a list$"):
        pulumi_mocks.run(_automation.workflow_program(program))


def test_the_inline_program_deploys_a_python_workflow(tmp_path, pulumi_mocks):
    """Mocks stand in for the engine: a `.py` that defines Specs (and imports no pulumi) is a workflow, loaded."""
    source = tmp_path / "orders.py"
    source.write_text("from kumeo_iac.spec import NATS, DataProcessor, WorkflowSpec\n\n"
                      "clean = DataProcessor(id='clean', input='source')\n"
                      "orders = WorkflowSpec(name='Orders', source=NATS('orders.in'), target=NATS('orders.out'),\n"
                      "                      agents=[clean])\n")
    pulumi.runtime.set_all_config({"kumeo:manageJetStream": "false"})
    resources = pulumi_mocks.run(_automation.workflow_program(source))
    (deployment,) = resources_of_type(resources, "kubernetes:apps/v1:Deployment")
    assert deployment.get("metadata.name") == "orders-clean"

    source.write_text("from kumeo_iac.spec import NATS, LLM, WorkflowSpec\n\n"
                      "orders = WorkflowSpec(name='Orders', source=NATS('orders.in'), target=NATS('orders.out'),\n"
                      "                      agents=[LLM('ollama/x', id='explain', input='nowhere.output')])\n")
    with pytest.raises(pulumi.RunError, match=rf"{source}:4:"):
        pulumi_mocks.run(_automation.workflow_program(source))


def test_up_drives_create_or_select_stack_with_an_inline_program(tiny, monkeypatch, capsys):
    """A recording stand-in replaces the Automation API; it checks our arguments and deploys nothing.

    (What `up` shows and asks is tested in test_kumeo_up.py.)
    """
    from pulumi import automation as auto

    calls = {}

    class Result:
        change_summary: ClassVar[dict[str, int]] = {"create": 9}
        summary = type("Summary", (), {"resource_changes": {"create": 9}})()

    class RecordingStack:
        def set_all_config(self, values, path=False):
            calls["config"] = values

        def preview(self, on_output=None, **kwargs):
            calls["preview"] = on_output
            return Result()

        def up(self, on_output=None, **kwargs):
            calls["up"] = on_output
            return Result()

    def create_or_select_stack(**kwargs):
        calls.update(kwargs)
        return RecordingStack()

    monkeypatch.setattr(_automation, "pulumi_cli", lambda: "/usr/local/bin/pulumi")
    monkeypatch.setattr(auto, "create_or_select_stack", create_or_select_stack)
    assert main(["up", str(tiny), "--stack", "dev", "--yes", "--config", "namespace=tiny-dev"]) == 0
    assert calls["stack_name"] == "dev" and calls["project_name"] == "tiny"
    assert callable(calls["program"])
    # The engine's plugins (the JetStream dynamic providers) run in this very Python environment.
    runtime = calls["opts"].project_settings.runtime
    assert runtime.name == "python" and runtime.options == {"virtualenv": sys.prefix}
    # ... and learn the project and stack from the environment, for their audit records.
    assert calls["opts"].env_vars == {"PULUMI_PYTHON_CMD": sys.executable, "PULUMI_PROJECT": "tiny",
                                      "PULUMI_STACK": "dev"}
    assert Path(calls["opts"].work_dir) == tiny.parent / ".kumeo" / "pulumi" / "tiny"
    assert calls["config"]["kumeo:namespace"].value == "tiny-dev"
    assert calls["preview"] is print and calls["up"] is print
    assert "stack 'dev' updated: 9 created" in capsys.readouterr().err


# -- kumeo new -----------------------------------------------------------------------------------------------


def test_kumeo_new_scaffolds_a_project_whose_tests_pass(tmp_path):
    target = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "kumeo_iac.cli", "new", "demo", "--dir", str(target)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    for name in ("Pulumi.yaml", "__main__.py", "demo.kumeo", "requirements.txt", "tests/test_stack.py"):
        assert (target / name).is_file(), name
    import yaml

    project = yaml.safe_load((target / "Pulumi.yaml").read_text())
    assert project["name"] == "demo" and project["runtime"]["name"] == "python"
    assert project["runtime"]["options"]["virtualenv"] == "venv"
    assert "Workflow.from_file" in (target / "__main__.py").read_text()

    check = subprocess.run([sys.executable, "-m", "kumeo_iac.cli", "check", str(target / "demo.kumeo")],
                           capture_output=True, text=True, cwd=ROOT)
    assert check.returncode == 0, check.stderr
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                           capture_output=True, text=True, cwd=target, env=env)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "2 passed" in tests.stdout


def pulumi_project_problems(project: dict) -> list[str]:
    """Pulumi's own checks of a Pulumi.yaml ``config:`` block, restated (the CLI is not installed here).

    From pulumi/pulumi sdk/go/common/workspace: ``Project.Validate`` (project.go) and the ``configTypeDeclaration``
    of project.json. A key outside the project's namespace may not declare a ``type`` or a ``default`` and must
    give a ``value``; a declaration has no attributes but type, items, description, secret, default and value.
    """
    problems = []
    allowed = {"type", "items", "description", "secret", "default", "value"}
    for key, declaration in (project.get("config") or {}).items():
        if not isinstance(declaration, dict):
            continue  # shorthand `key: value`
        if set(declaration) - allowed:
            problems.append(f"{key}: unknown attributes {sorted(set(declaration) - allowed)}")
        if "default" in declaration and "value" in declaration:
            problems.append(f"{key}: both default and value")
        own = ":" not in key or key.startswith(f"{project['name']}:")
        if own:
            if declaration.get("type") not in (None, "string", "integer", "boolean", "array"):
                problems.append(f"{key}: unknown type {declaration['type']!r}")
            continue
        if "type" in declaration:
            problems.append(f"Configuration key '{key}' is not namespaced by the project and should not define a type")
        if "default" in declaration:
            problems.append(f"Configuration key '{key}' is not namespaced by the project and should not define a "
                            "default value")
        if declaration.get("value") is None:
            problems.append(f"Configuration key '{key}' is namespaced and must provide an attribute 'value'")
    return problems


def test_the_pulumi_rules_restated_here_reject_what_pulumi_rejects():
    bad = {"name": "demo", "config": {"kumeo:natsUrl": {"type": "string", "description": "d", "default": "x"},
                                      "kumeo:keda": {"description": "no value"}}}
    assert pulumi_project_problems(bad) == [
        "Configuration key 'kumeo:natsUrl' is not namespaced by the project and should not define a type",
        "Configuration key 'kumeo:natsUrl' is not namespaced by the project and should not define a default value",
        "Configuration key 'kumeo:natsUrl' is namespaced and must provide an attribute 'value'",
        "Configuration key 'kumeo:keda' is namespaced and must provide an attribute 'value'",
    ]
    good = {"name": "demo", "config": {"demo:size": {"type": "integer", "default": 2}, "aws:region": "us-east-1",
                                       "kumeo:keda": {"description": "d", "value": False}}}
    assert pulumi_project_problems(good) == []


def test_kumeo_new_writes_the_declared_keys_into_pulumi_yaml(tmp_path):
    import yaml

    from kumeo_iac._cli.deploy import scaffold
    from kumeo_iac.components._config import CONFIG_KEYS

    scaffold("payments", tmp_path / "payments")
    text = (tmp_path / "payments" / "Pulumi.yaml").read_text()
    project = yaml.safe_load(text)
    assert pulumi_project_problems(project) == []
    config = project["config"]
    for key in CONFIG_KEYS:
        if key.default is not None and not key.secret:  # a constant default: a project-wide value
            assert config[key.key] == {"description": key.doc.replace("`", ""), "value": key.default}, key.key
        else:  # depends on the workflow, or a secret: listed in the comment above `config:`
            assert key.key not in config
            assert re.search(rf"^#   {re.escape(key.key)} \({key.type_doc}\): ", text, re.MULTILINE), key.key
    assert config["kumeo:retainStreams"]["value"] is False and config["kumeo:manageJetStream"]["value"] is True


def test_kumeo_new_refuses_a_non_empty_directory(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("x")
    assert main(["new", "demo", "--dir", str(tmp_path)]) == 1
    assert "not empty" in capsys.readouterr().err


def test_the_documented_github_workflow_runs_pulumi_preview_on_pull_requests():
    import re

    import yaml

    text = (ROOT / "docs" / "deploy.md").read_text()
    workflow = yaml.safe_load(re.search(r"```yaml\n(.*?)```", text, re.S).group(1))
    assert "pull_request" in workflow[True] if True in workflow else "pull_request" in workflow["on"]
    steps = workflow["jobs"]["preview"]["steps"]
    (preview,) = [s for s in steps if str(s.get("uses", "")).startswith("pulumi/actions")]
    assert preview["with"]["command"] == "preview"

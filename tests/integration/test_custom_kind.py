"""A kind is one place: a new agent kind defined in a module of its own (custom_kind/upper_kind.py, ``Upper``) goes
through `kumeo check`, compile (`kumeo render`) and `kumeo run` on a real nats-server with no change to Kumeo.

The kind is registered only in the `kumeo` subprocesses (by the workflow's ``from upper_kind import Upper``), never
in this test process, so other tests see the built-in kinds only.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from kumeo_iac import Agent, KumeoRuntimeError, KumeoSpecError, register_kind
from kumeo_iac.runtime.agents import handler_class
from kumeo_iac.spec import AGENT_KINDS, arg

HERE = Path(__file__).parent / "custom_kind"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of custom_kind/ (the kind, the workflow using it, its glossary file), so runs write nothing here."""
    shutil.copytree(HERE, tmp_path / "project")
    return tmp_path / "project"


def kumeo(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kumeo_iac", *args], capture_output=True, text=True, timeout=110,
                          input=stdin, cwd=cwd, check=False)


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


# -- check --------------------------------------------------------------------------------------------------------


def test_check_accepts_the_new_kind(project: Path) -> None:
    proc = kumeo("check", str(project / "shout.py"))
    assert proc.returncode == 0, proc.stderr
    assert "no problems" in proc.stdout + proc.stderr


def test_check_reports_a_misspelt_setting_of_the_new_kind_with_a_did_you_mean(project: Path) -> None:
    workflow = project / "shout.py"
    workflow.write_text(workflow.read_text().replace('{"suffix": "!"}', '{"sufix": "!"}'))
    proc = kumeo("check", str(workflow))
    assert proc.returncode == 1
    line = line_of(workflow, "Upper(")
    assert f"{workflow}:{line}:1: error: config of Upper 'shout' has no setting 'sufix'; did you mean 'suffix'?" in (
        proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr


def test_check_reports_a_wrong_type_and_a_missing_file_of_the_new_kind(project: Path) -> None:
    workflow = project / "shout.py"
    workflow.write_text(workflow.read_text().replace('{"suffix": "!"}', '{"suffix": 5}')
                        .replace('glossary="glossary.json"', 'glossary="missing.json"'))
    proc = kumeo("check", str(workflow))
    assert proc.returncode == 1
    assert "config 'suffix' of Upper 'shout' must be a string, not 5" in proc.stderr, proc.stderr
    # `glossary` is a file argument of the kind (Upper.file_arguments): checked like a built-in kind's files.
    assert "glossary file 'missing.json' of Upper 'shout' does not exist" in proc.stderr, proc.stderr


def test_check_parses_the_expression_the_new_kind_declares(project: Path) -> None:
    # Upper.expressions() names `keep_if` as an expression: check parses it like a built-in kind's `trigger`.
    workflow = project / "shout.py"
    workflow.write_text(workflow.read_text().replace('keep_if="quiet == true"', 'keep_if="quiet =="'))
    proc = kumeo("check", str(workflow))
    assert proc.returncode == 1
    line = line_of(workflow, "Upper(")  # a Python workflow: the call that made the agent
    assert f"{workflow}:{line}:" in proc.stderr and "error: `keep_if` of Upper 'shout' does not parse:" in (
        proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr


# -- compile and render -------------------------------------------------------------------------------------------


def test_render_compiles_the_kind_from_its_declarations(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = kumeo("render", str(project / "shout.py"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr

    plan = json.loads((out / "shout" / "plan.json").read_text())
    agent = next(a for a in plan["workflows"][0]["agents"] if a["id"] == "shout")
    assert agent["kind"] == "Upper"
    assert agent["handler"] == "upper_kind:UpperAgent" and agent["handler_extra"] is None
    assert agent["image_class"] == "base" and agent["image"].endswith("/agent-base:0.1.0")
    assert agent["files"] == ["glossary.json"]
    assert agent["http_api"] is None and agent["uses_secrets"] is False
    assert agent["settings"] == {"config": {"suffix": "!"}, "field": "text", "glossary": {"file": "glossary.json"},
                                 "keep_if": "quiet == true"}
    assert agent["egress"] == []

    objects = [yaml.safe_load(p.read_text()) for p in sorted((out / "shout" / "kubernetes").glob("*.yaml"))]
    deployment = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "shout-shout")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == agent["image"]
    assert container["command"] == ["python", "-m", "kumeo_iac.runtime"]
    assert {v["name"] for v in deployment["spec"]["template"]["spec"]["volumes"]} >= {"files"}
    files = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "shout-files")
    assert json.loads(base64.b64decode(files["binaryData"]["glossary.json"])) == ["kumeo", "nats"]


# -- run ------------------------------------------------------------------------------------------------------------


@pytest.mark.nats
@pytest.mark.timeout(150)
@pytest.mark.parametrize("mode", [[], ["--processes"]], ids=["in-process", "processes"])
def test_run_upper_cases_events_on_a_real_nats_server(project: Path, mode: list[str]) -> None:
    events = [{"text": "hello kumeo world"}, {"text": 5}, {"text": "nats is fast"}, {"text": "psst", "quiet": True}]
    proc = kumeo("run", str(project / "shout.py"), "--input", "-", *mode,
                 stdin="".join(json.dumps(e) + "\n" for e in events), cwd=project.parent)
    assert proc.returncode == 0, proc.stderr
    lines = sorted((json.loads(line) for line in proc.stdout.splitlines()), key=lambda d: d["event_id"])
    reason = "Upper: field 'text' is not text"
    assert lines == [
        {"subject": "words.out", "event_id": "stdin-1", "data": {"text": "HELLO kumeo WORLD!"}},
        {"subject": "kumeo.shout.dlq.shout", "event_id": "stdin-2",
         "data": {"error": reason, "agent": "shout", "input": {"text": 5}, "attempt": 1}, "error": reason},
        {"subject": "words.out", "event_id": "stdin-3", "data": {"text": "nats IS FAST!"}},
        {"subject": "words.out", "event_id": "stdin-4", "data": {"text": "psst", "quiet": True}},  # keep_if held
    ]
    assert "Traceback" not in proc.stderr


# -- registration and the runtime handler -------------------------------------------------------------------------


def test_register_kind_refuses_an_incomplete_kind_and_a_taken_name() -> None:
    class Whisper(Agent):
        kind_name: ClassVar[str] = "Whisper"
        field: str | None = arg("The field.")

    with pytest.raises(KumeoSpecError, match=r"runtime_handler must be \"package.module:Class\""):
        register_kind(Whisper)

    class Shadow(Agent):
        kind_name: ClassVar[str] = "LLM"
        runtime_handler: ClassVar[str] = "shadow:ShadowAgent"

    with pytest.raises(KumeoSpecError, match=r"the name 'LLM' is taken by kumeo_iac\.spec\._agents\.LLM"):
        register_kind(Shadow)

    class Files(Agent):
        kind_name: ClassVar[str] = "Files"
        runtime_handler: ClassVar[str] = "files:FilesAgent"
        file_arguments: ClassVar[tuple[str, ...]] = ("glosary",)

    with pytest.raises(KumeoSpecError, match="'glosary' is not an argument of the kind"):
        register_kind(Files)
    assert {"Whisper", "Files"}.isdisjoint(AGENT_KINDS) and AGENT_KINDS["LLM"] is not Shadow


def test_a_handler_that_cannot_be_imported_is_a_clear_runtime_error(tmp_path: Path) -> None:
    with pytest.raises(KumeoRuntimeError, match=r"agent kind 'Upper': runtime handler 'no_such_module:UpperAgent': "
                                                r"no module 'no_such_module' \(looked in .+ and the installed"):
        handler_class("no_such_module:UpperAgent", kind="Upper", base_dir=tmp_path)
    (tmp_path / "not_an_agent.py").write_text("class UpperAgent:\n    pass\n")
    with pytest.raises(KumeoRuntimeError, match=r"is not a kumeo_iac\.runtime\.RuntimeAgent subclass"):
        handler_class("not_an_agent:UpperAgent", kind="Upper", base_dir=tmp_path)


def test_a_plan_written_before_kinds_declared_their_handler_still_loads() -> None:
    from kumeo_iac.compile import Plan

    def without_declarations(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: without_declarations(v) for k, v in value.items()
                    if k not in ("handler", "handler_extra", "http_api", "uses_secrets")}
        if isinstance(value, list):
            return [without_declarations(v) for v in value]
        return value

    plan = json.loads((Path(__file__).parents[1] / "scenarios" / "seed_fraud_detection" / "expected_plan.json")
                      .read_text())
    old = Plan.from_dict(without_declarations(plan))
    declared = {a.kind: (a.handler, a.handler_extra, a.uses_secrets) for a in old.workflows[0].agents}
    assert declared["LLM"] == ("kumeo_iac.runtime.agents.llm:LLMAgent", "llm", True)
    assert old.to_json() == Plan.from_dict(plan).to_json()


def test_a_plan_written_before_agents_carried_their_egress_gets_it_from_the_kind() -> None:
    from kumeo_iac.compile import Plan

    plan = json.loads((Path(__file__).parents[1] / "scenarios" / "keda" / "expected_plan.json").read_text())
    old = json.loads(json.dumps(plan))
    for wf in old["workflows"]:
        for agent in wf["agents"]:
            del agent["egress"]
    loaded = Plan.from_dict(old)
    assert {a.kind: a.egress for a in loaded.workflows[0].agents}["LLM"] == ["https://api.openai.com/v1"]
    assert loaded.to_json() == Plan.from_dict(plan).to_json()

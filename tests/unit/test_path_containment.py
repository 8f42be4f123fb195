"""Files a workflow names stay inside the workflow's folder (or a declared data root) — issue 14, item 5.

``kumeo check`` reports an absolute path elsewhere, a ``..`` escape or a symlink pointing out as an error at the
path; compile refuses it; the deployer refuses to read it even from a hand-made Plan; the runtime agents refuse it
too. And the loaders never quote the text of a file that is not a valid table, network or module.
"""

from __future__ import annotations

import copy
import re
import textwrap
from pathlib import Path

import pytest

from kumeo_iac.compile import compile_program
from kumeo_iac.errors import (
    KumeoCompileError,
    KumeoDeployError,
    KumeoRuntimeError,
    KumeoSyntaxError,
    Severity,
)
from kumeo_iac.lang import parse_file
from kumeo_iac.manifests import workflow_manifests
from kumeo_iac.runtime.dmx import load_dmx
from kumeo_iac.spec import NATS, DataProcessor, MLModel, Program, WorkflowSpec
from kumeo_iac.validate import check_file

SECRET = "AKIA_SUPER_SECRET_hunter2_0123456789"

# One agent per kind and the field that names its file.
KINDS = {
    "MLModel": ('MLModel({path}, id: "a", input: source, features: ["x"])', "model", ".onnx"),
    "DecisionMatrix": ('DecisionMatrix(id: "a", input: source, matrix: {path})', "matrix", ".dmx"),
    "BayesianNetwork": ('BayesianNetwork(id: "a", input: source, network: {path})', "network", ".bif"),
    "Custom": ('Custom(id: "a", input: source, wasm: {path})', "wasm", ".wasm"),
}


def workflow_text(agent: str, extra: str = "") -> str:
    return textwrap.dedent("""\
        workflow W {
          source: NATS("in")
          target: NATS("out")
          agents: [
            %s
          ]
        %s}
        """) % (agent, extra)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp/wf (the workflow's folder), tmp/outside (files next to it), tmp/shared (a data root)."""
    (tmp_path / "wf" / "models").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "shared").mkdir()
    for ext in (".onnx", ".dmx", ".bif", ".wasm"):
        (tmp_path / "wf" / "models" / f"ok{ext}").write_text("x")
        (tmp_path / "outside" / f"secret{ext}").write_text(SECRET)
        (tmp_path / "shared" / f"common{ext}").write_text("x")
        (tmp_path / "wf" / f"link{ext}").symlink_to(tmp_path / "outside" / f"secret{ext}")
    return tmp_path


def check(tree: Path, agent: str, extra: str = "", *, strict: bool = False):
    text = workflow_text(agent, extra)
    path = tree / "wf" / "w.kumeo"
    path.write_text(text)
    return text, [d for d in check_file(path, strict_files=strict) if d.code == "path-escape"]


def position(text: str, needle: str) -> tuple[int, int]:
    index = text.index(needle)
    return text.count("\n", 0, index) + 1, index - text.rfind("\n", 0, index)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink"])
def test_check_reports_a_path_leaving_the_folder_at_its_line_and_column(tree: Path, kind: str, how: str) -> None:
    template, field, ext = KINDS[kind]
    written = {"absolute": str(tree / "outside" / f"secret{ext}"), "dotdot": f"../outside/secret{ext}",
               "symlink": f"link{ext}"}[how]
    text, found = check(tree, template.format(path=f'"{written}"'))
    assert len(found) == 1, found
    diagnostic = found[0]
    assert diagnostic.severity is Severity.ERROR  # an error even without strict_files
    assert (diagnostic.span.line, diagnostic.span.column) == position(text, f'"{written}"')
    message = diagnostic.message
    assert f"{field} path '{written}'" in message
    assert f"leaves the workflow's folder {(tree / 'wf').resolve()}" in message
    assert "keep the file under it (or declare a data root" in message
    if how == "symlink":
        assert "through a symlink" in message
    assert SECRET not in str(diagnostic)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_file_inside_the_folder_passes(tree: Path, kind: str) -> None:
    template, _, ext = KINDS[kind]
    _, found = check(tree, template.format(path=f'"models/ok{ext}"'), strict=True)
    assert found == []
    # an absolute path inside the folder, and a `..` that comes back in, are inside too
    _, found = check(tree, template.format(path=f'"{tree / "wf" / "models" / f"ok{ext}"}"'))
    assert found == []
    _, found = check(tree, template.format(path=f'"models/../models/ok{ext}"'))
    assert found == []


def test_an_escape_through_a_models_block_entry_is_reported_at_the_entry(tree: Path) -> None:
    text, found = check(tree, 'MLModel("models.scorer", id: "a", input: source, features: ["x"])',
                        '  models: { scorer: { file: "/etc/passwd" } }\n')
    assert len(found) == 1
    assert (found[0].span.line, found[0].span.column) == position(text, '"/etc/passwd"')


def test_a_declared_data_root_is_allowed(tree: Path) -> None:
    agent = 'MLModel("../shared/common.onnx", id: "a", input: source, features: ["x"])'
    _, found = check(tree, agent)
    assert len(found) == 1
    _, found = check(tree, agent, '  deployment: { storage: { data_root: "../shared" } }\n')
    assert found == []
    _, found = check(tree, 'MLModel("../outside/secret.onnx", id: "a", input: source, features: ["x"])',
                     '  deployment: { storage: { data_root: "../shared" } }\n')
    assert len(found) == 1


def test_other_diagnostics_keep_their_quality(tree: Path) -> None:
    text = workflow_text('MLModel("../outside/secret.onnx", id: "a", inptu: source, features: ["x"])')
    path = tree / "wf" / "w.kumeo"
    path.write_text(text)
    messages = [d.message for d in check_file(path)]
    assert any("did you mean 'input'" in m for m in messages), messages
    assert any("leaves the workflow's folder" in m for m in messages)


# -- compile -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_compile_refuses_a_path_leaving_the_folder(tree: Path, kind: str) -> None:
    template, field, ext = KINDS[kind]
    path = tree / "wf" / "w.kumeo"
    for written in (f"../outside/secret{ext}", str(tree / "outside" / f"secret{ext}"), f"link{ext}"):
        path.write_text(workflow_text(template.format(path=f'"{written}"')))
        program = parse_file(path).program
        with pytest.raises(KumeoCompileError) as info:
            compile_program(program, base_dir=path.parent)
        assert f"{field} path {written!r} leaves the workflow's folder" in str(info.value)
    path.write_text(workflow_text(template.format(path=f'"models/ok{ext}"')))
    plan = compile_program(parse_file(path).program, base_dir=path.parent)
    assert plan.workflows[0].agent("a").files == [f"models/ok{ext}"]


def test_compile_without_a_folder_refuses_by_the_text() -> None:
    for written in ("../x.onnx", "/etc/passwd", "a/../../x.onnx"):
        program = Program(workflows=[WorkflowSpec(name="W", sources=[NATS("in")], targets=[NATS("out")], agents=[
            MLModel(written, id="a", input="source", features=["x"])])])
        with pytest.raises(KumeoCompileError, match="leaves the workflow's folder"):
            compile_program(program)
    program = Program(workflows=[WorkflowSpec(name="W", sources=[NATS("in")], targets=[NATS("out")], agents=[
        MLModel("models/../m.onnx", id="a", input="source", features=["x"])])])
    assert compile_program(program).workflows[0].agent("a").files == ["models/../m.onnx"]


def test_compile_accepts_a_declared_data_root(tree: Path) -> None:
    path = tree / "wf" / "w.kumeo"
    path.write_text(workflow_text('MLModel("../shared/common.onnx", id: "a", input: source, features: ["x"])',
                                  '  deployment: { storage: { data_root: "../shared" } }\n'))
    plan = compile_program(parse_file(path).program, base_dir=path.parent)
    assert plan.workflows[0].agent("a").files == ["../shared/common.onnx"]


# -- the deployer ------------------------------------------------------------------------------------------------


def _hand_made(tree: Path, bad: str):
    """A compiled Plan whose files ConfigMap item was edited by hand to point elsewhere."""
    program = Program(workflows=[WorkflowSpec(name="W", sources=[NATS("in")], targets=[NATS("out")], agents=[
        DataProcessor(id="c"), MLModel("models/ok.onnx", id="a", input="c.output", features=["x"])])])
    wf = compile_program(program, base_dir=tree / "wf").workflows[0]
    wf = copy.deepcopy(wf)
    edited = 0
    for obj in wf.kubernetes:
        if obj["kind"] != "Deployment":
            continue
        for volume in obj["spec"]["template"]["spec"].get("volumes") or []:
            for item in (volume.get("configMap") or {}).get("items") or []:
                item["path"] = bad
                edited += 1
    assert edited
    return wf


@pytest.mark.parametrize("bad", ["../outside/secret.onnx", "ABSOLUTE", "link.onnx"])
def test_the_deployer_refuses_to_read_outside_base_dir(tree: Path, bad: str) -> None:
    if bad == "ABSOLUTE":
        bad = str(tree / "outside" / "secret.onnx")
    wf = _hand_made(tree, bad)
    with pytest.raises(KumeoDeployError) as info:
        workflow_manifests(wf, tree / "wf")
    assert "leaves the workflow's folder" in str(info.value) and "refused" in str(info.value)
    assert SECRET not in str(info.value)


def test_the_deployer_reads_a_file_inside(tree: Path) -> None:
    manifests = workflow_manifests(_hand_made(tree, "models/ok.onnx"), tree / "wf")
    assert any(o["kind"] == "ConfigMap" for o in manifests.objects)


# -- the runtime -------------------------------------------------------------------------------------------------


def test_runtime_agents_refuse_a_file_outside_their_files_folder(tree: Path, monkeypatch) -> None:
    from kumeo_iac._paths import runtime_path

    base = tree / "wf"
    monkeypatch.delenv("KUMEO_DATA_ROOTS", raising=False)
    assert runtime_path("models/ok.onnx", base, "x") == base / "models" / "ok.onnx"
    for bad in ("../outside/secret.dmx", str(tree / "outside" / "secret.dmx"), "link.dmx"):
        with pytest.raises(KumeoRuntimeError, match="leaves the files folder"):
            runtime_path(bad, base, "DecisionMatrix 'a'")
    monkeypatch.setenv("KUMEO_DATA_ROOTS", str(tree / "shared"))
    assert runtime_path("../shared/common.dmx", base, "x") == base / "../shared/common.dmx"


def test_the_decision_matrix_agent_refuses_a_matrix_outside(tree: Path) -> None:
    import asyncio

    from kumeo_iac.runtime.agents import create_agent

    program = Program(workflows=[WorkflowSpec(name="W", sources=[NATS("in")], targets=[NATS("out")], agents=[
        DataProcessor(id="c")])])
    wf = compile_program(program).workflows[0]
    plan = copy.deepcopy(wf.agent("c"))
    object.__setattr__(plan, "kind", "DecisionMatrix")
    object.__setattr__(plan, "handler", "kumeo_iac.runtime.agents.decision_matrix:DecisionMatrixAgent")
    object.__setattr__(plan, "settings", {"matrix": {"file": "../outside/secret.dmx"}})
    agent = create_agent(plan, wf, tree / "wf")
    with pytest.raises(KumeoRuntimeError) as info:
        asyncio.run(agent.start())
    assert "leaves the files folder" in str(info.value)
    assert SECRET not in str(info.value)


# -- loader messages never quote the file ------------------------------------------------------------------------


@pytest.mark.parametrize("first_line", [
    SECRET,
    f"password: {SECRET}",
    f"hit_policy: {SECRET}",
    f"root:x:0:0:{SECRET}:/root:/bin/bash",
    f"| {SECRET} || out |",
    f'| a || out |\n|---||---|\n| {SECRET} zz || 1 |',
    f'| a || out |\n|---||---|\n| 1 || {SECRET} |',
    f'| a || {SECRET} |',
    f'| a || out |\n|---||---|\n| 1 || "x" {SECRET} |',
    f'| a || out |\n|---||---|\n| 12345{SECRET} || 1 |',
])
def test_the_dmx_loader_names_the_file_and_line_but_never_quotes_it(tmp_path: Path, first_line: str) -> None:
    path = tmp_path / "leak.dmx"
    path.write_text(first_line + "\n")
    with pytest.raises(KumeoSyntaxError) as info:
        load_dmx(path)
    text = str(info.value)
    assert re.match(rf"{re.escape(str(path))}:\d+:\d+: error: ", text), text
    assert SECRET not in text
    assert "hunter2" not in text


def test_the_network_loader_never_quotes_the_file(tmp_path: Path) -> None:
    pytest.importorskip("pgmpy")
    from kumeo_iac.runtime._models import _read_model

    for name, content in [("a.bif", SECRET + "\n"), ("b.xml", f"<x>{SECRET}</y>\n"),
                          ("c.bif", "network n {\n}\nvariable x {\n type discrete [ 2 ] { " + SECRET + " ;\n}\n")]:
        path = tmp_path / name
        path.write_text(content)
        with pytest.raises(KumeoRuntimeError) as info:
            _read_model(path, "BayesianNetwork 'b'")
        assert str(path) in str(info.value) and SECRET not in str(info.value)


def test_the_wasm_loader_never_quotes_the_file(tmp_path: Path) -> None:
    pytest.importorskip("wasmtime")
    from kumeo_iac.runtime.wasm import WasmModule

    for name, content in [("a.wasm", SECRET), ("b.wat", f"(module (func $f ({SECRET})))"),
                          ("c.wat", f"(module (func $f (i32.{SECRET})))")]:
        path = tmp_path / name
        path.write_text(content)
        with pytest.raises(KumeoRuntimeError) as info:
            WasmModule(path, name="Custom 'c'", time_limit=1.0, memory_limit=16 * 1024 * 1024, fuel=None)
        assert str(path) in str(info.value) and SECRET not in str(info.value)


def test_the_model_loaders_never_quote_the_file(tmp_path: Path) -> None:
    from kumeo_iac.runtime.agents.ml_model import _OnnxRunner, _PickleRunner

    path = tmp_path / "m.onnx"
    path.write_text(SECRET + "\n")
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        pass
    else:
        with pytest.raises(KumeoRuntimeError) as info:
            _OnnxRunner(path, {}, "MLModel 'm'")
        assert SECRET not in str(info.value)
    pickled = tmp_path / "m.pkl"
    pickled.write_text(SECRET + "\n")
    with pytest.raises(KumeoRuntimeError) as info:
        _PickleRunner(pickled, "MLModel 'm'")
    assert str(pickled) in str(info.value) and SECRET not in str(info.value)

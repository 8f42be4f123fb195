"""`kumeo render`: files on disk, byte-identical across runs, gcc-style errors and exit codes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from kumeo_iac._cli.render import run_render

PROGRAM = '''
from kumeo_iac.spec import NATS, DataProcessor, MLModel, Program, WorkflowSpec, Deployment, Scaling
PROGRAM = Program(workflows=[WorkflowSpec(
    name="FraudDetection",
    sources=[NATS("transactions")],
    targets=[NATS("alerts")],
    agents=[DataProcessor(id="clean"), MLModel("forest.onnx", id="score", input="clean.output")],
    deployment=Deployment(scaling=Scaling(min_replicas=1, max_replicas=3)),
)])
'''

KUMEO = '''
workflow FraudDetection {
  source: NATS("transactions")
  target: NATS("alerts")
  agents: [
    DataProcessor(id: "clean"),
    MLModel("forest.onnx", id: "score", input: clean.output)
  ]
}
'''


def render(path: Path, out: Path) -> int:
    return run_render(argparse.Namespace(path=str(path), out=str(out)))


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "forest.onnx").write_bytes(b"onnx")
    (tmp_path / "program.py").write_text(PROGRAM)
    return tmp_path / "program.py"


def test_render_writes_the_layout_and_prints_a_summary(project: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert render(project, out) == 0
    summary = capsys.readouterr().out
    assert summary.startswith("rendered FraudDetection: 14 Kubernetes objects, 3 streams, 2 consumers, 0 KV buckets")
    root = out / "fraud-detection"
    assert summary.rstrip().endswith(str(root))
    files = snapshot(root)
    assert "plan.json" in files
    assert "jetstream/streams/KUMEO_FRAUD_DETECTION.json" in files
    assert "jetstream/consumers/KUMEO_FRAUD_DETECTION/score.json" in files
    assert "jetstream/consumers/KUMEO_FRAUD_DETECTION_SOURCES/clean.json" in files
    k8s = sorted(f for f in files if f.startswith("kubernetes/"))
    assert k8s[0] == "kubernetes/00-configmap-fraud-detection-plan.yaml"
    assert len(k8s) == 14
    for name in k8s:
        docs = list(yaml.safe_load_all(files[name]))
        assert len(docs) == 1 and docs[0]["kind"].lower() in name
    consumer = json.loads(files["jetstream/consumers/KUMEO_FRAUD_DETECTION/score.json"])
    assert consumer["durable_name"] == "score" and consumer["ack_policy"] == "explicit"


def test_render_is_byte_identical_across_runs(project: Path, tmp_path: Path) -> None:
    assert render(project, tmp_path / "a") == 0
    assert render(project, tmp_path / "b") == 0
    assert render(project, tmp_path / "a") == 0  # re-rendering in place too
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")


def test_render_a_kumeo_file(tmp_path: Path, capsys) -> None:
    pytest.importorskip("kumeo_iac.lang")
    (tmp_path / "forest.onnx").write_bytes(b"onnx")
    (tmp_path / "w.kumeo").write_text(KUMEO)
    assert render(tmp_path / "w.kumeo", tmp_path / "out") == 0
    assert (tmp_path / "out" / "fraud-detection" / "plan.json").exists()


def test_missing_model_file_is_an_error(tmp_path: Path, capsys) -> None:
    pytest.importorskip("kumeo_iac.lang")
    (tmp_path / "w.kumeo").write_text(KUMEO)
    assert render(tmp_path / "w.kumeo", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'w.kumeo'}:" in err and ": error: " in err and "forest.onnx" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_syntax_error_is_reported_gcc_style(tmp_path: Path, capsys) -> None:
    pytest.importorskip("kumeo_iac.lang")
    (tmp_path / "bad.kumeo").write_text("workflow X {\n  agents: [\n")
    assert render(tmp_path / "bad.kumeo", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{tmp_path / 'bad.kumeo'}:") and ": error: " in err and "Traceback" not in err


def test_compile_error_is_reported_with_path(tmp_path: Path, capsys) -> None:
    (tmp_path / "p.py").write_text(PROGRAM.replace('input="clean.output"', 'input="nowhere.output"'))
    assert render(tmp_path / "p.py", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "error:" in err and "nowhere.output" in err and "Traceback" not in err


def test_missing_input_file(tmp_path: Path, capsys) -> None:
    assert render(tmp_path / "nope.kumeo", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "nope.kumeo" in err and "error" in err and "Traceback" not in err

"""`kumeo render`: files on disk, byte-identical across runs, gcc-style errors and exit codes."""

from __future__ import annotations

import argparse
import base64
import hashlib
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
    root = out / "fraud-detection"
    # one line: no Secret is needed (no API keys, no NATS users, no TLS), so none is listed
    assert capsys.readouterr().out == (
        f"rendered FraudDetection: 9 Kubernetes objects, 3 streams, 2 consumers, 0 KV buckets → {root}\n")
    files = snapshot(root)
    assert "plan.json" in files
    assert "jetstream/streams/KUMEO_FRAUD_DETECTION.json" in files
    assert "jetstream/consumers/KUMEO_FRAUD_DETECTION/score.json" in files
    assert "jetstream/consumers/KUMEO_FRAUD_DETECTION_SOURCES/clean.json" in files
    k8s = sorted(f for f in files if f.startswith("kubernetes/"))
    # the objects the Workflow component applies, in apply order: the files ConfigMap before the first Deployment
    assert k8s == [
        "kubernetes/00-configmap-fraud-detection-grafana-dashboard.yaml",
        "kubernetes/01-serviceaccount-fraud-detection-agents.yaml",
        "kubernetes/02-service-fraud-detection-metrics.yaml",
        "kubernetes/03-configmap-fraud-detection-files.yaml",
        "kubernetes/04-deployment-fraud-detection-clean.yaml",
        "kubernetes/05-deployment-fraud-detection-score.yaml",
        "kubernetes/06-networkpolicy-fraud-detection-agents.yaml",
        "kubernetes/07-horizontalpodautoscaler-fraud-detection-clean.yaml",
        "kubernetes/08-horizontalpodautoscaler-fraud-detection-score.yaml",
    ]
    for name in k8s:
        docs = list(yaml.safe_load_all(files[name]))
        assert len(docs) == 1 and docs[0]["kind"].lower() in name
    consumer = json.loads(files["jetstream/consumers/KUMEO_FRAUD_DETECTION/score.json"])
    assert consumer["durable_name"] == "score" and consumer["ack_policy"] == "explicit"


def test_render_reads_the_files_from_the_programs_folder(project: Path, tmp_path: Path, monkeypatch,
                                                        capsys) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not where forest.onnx is
    assert render(project, tmp_path / "out") == 0
    kubernetes = tmp_path / "out" / "fraud-detection" / "kubernetes"
    files = yaml.safe_load((kubernetes / "03-configmap-fraud-detection-files.yaml").read_text())
    assert files["binaryData"] == {"forest.onnx": base64.b64encode(b"onnx").decode()}
    assert "data" not in files
    score = yaml.safe_load((kubernetes / "05-deployment-fraud-detection-score.yaml").read_text())
    digest = hashlib.sha256(b"onnx").hexdigest()
    expected = hashlib.sha256(f"forest.onnx\0{digest}\n".encode()).hexdigest()
    assert score["spec"]["template"]["metadata"]["annotations"]["kumeo.dev/files-checksum"] == expected
    clean = yaml.safe_load((kubernetes / "04-deployment-fraud-detection-clean.yaml").read_text())
    assert "kumeo.dev/files-checksum" not in clean["spec"]["template"]["metadata"]["annotations"]


def render_cli(*argv: str) -> int:
    """`kumeo render ARGV…` through the real argument parser."""
    from kumeo_iac.cli import build_parser

    return run_render(build_parser().parse_args(["render", *argv]))


def test_render_lists_each_secret_the_pods_need_with_the_command_creating_it(project: Path, tmp_path: Path,
                                                                           capsys) -> None:
    """Given settings that make pods read Secrets (per-agent NATS users, TLS), render writes none of them and
    prints one `kubectl create secret` line for each."""
    out = tmp_path / "out"
    assert render_cli(str(project), "--out", str(out), "--nats-auth", "--nats-tls-secret", "nats-client-tls") == 0
    root = out / "fraud-detection"
    assert capsys.readouterr().out.splitlines() == [
        f"rendered FraudDetection: 9 Kubernetes objects, 3 streams, 2 consumers, 0 KV buckets → {root}",
        ("  needs Secret fraud-detection-nats (keys: fraud-detection-clean, fraud-detection-score), not rendered; "
         "create it with:"),
        ("    kubectl -n fraud-detection create secret generic fraud-detection-nats "
         "--from-literal=fraud-detection-clean=… --from-literal=fraud-detection-score=…"),
        "  needs Secret nats-client-tls (keys: ca.crt, tls.crt, tls.key), not rendered; create it with:",
        ("    kubectl -n fraud-detection create secret generic nats-client-tls "
         "--from-file=ca.crt=./ca.crt --from-file=tls.crt=./tls.crt --from-file=tls.key=./tls.key"),
    ]
    assert not [f for f in snapshot(root) if "secret" in f.lower()]
    score = yaml.safe_load((root / "kubernetes" / "05-deployment-fraud-detection-score.yaml").read_text())
    env = {e["name"]: e for e in score["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "fraud-detection-nats"
    assert env["NATS_TLS_CA"]["value"].endswith("/ca.crt")


LLM_WORKFLOW = """
workflow Support {
  source: NATS("questions")
  target: NATS("answers")
  agents: [ LLM("openai/gpt-4o-mini", id: "answer", prompt: "{{ text }}") ]
}
"""


def test_render_takes_the_platform_settings_from_a_file_and_flags(tmp_path: Path, capsys) -> None:
    (tmp_path / "w.kumeo").write_text(LLM_WORKFLOW)
    settings = tmp_path / "platform.yaml"
    settings.write_text("namespace: from-file\nimage_registry: file.example.com/kumeo\n"
                        "secrets: {OPENAI_API_KEY: llm-keys/openai}\negress_cidrs: [203.0.113.0/24]\n")
    out = tmp_path / "out"
    assert render_cli(str(tmp_path / "w.kumeo"), "--out", str(out), "--settings", str(settings),
                      "--namespace", "support", "--nats-url", "nats://nats.messaging.svc:4222", "--keda",
                      "--image-registry", "reg.example.com/kumeo", "--secret", "EXTRA_KEY=extra") == 0
    printed = capsys.readouterr().out.splitlines()
    # the API keys' Secrets are listed (the flag's key defaults to the variable's name)
    assert "  needs Secret extra (keys: EXTRA_KEY), not rendered; create it with:" in printed
    assert "    kubectl -n support create secret generic llm-keys --from-literal=openai=…" in printed
    plan = json.loads((out / "support" / "plan.json").read_text())["workflows"][0]
    assert plan["namespace"] == "support"  # the flag wins over the file
    assert plan["nats_url"] == "nats://nats.messaging.svc:4222"
    (deployment,) = [o for o in plan["kubernetes"] if o["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith("reg.example.com/kumeo/")
    assert {e["name"] for e in container["env"] if "valueFrom" in e} == {"EXTRA_KEY", "OPENAI_API_KEY"}
    (egress,) = [o for o in plan["kubernetes"] if o["metadata"]["name"] == "support-agents-egress"]
    assert egress["spec"]["egress"] == [{"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}],
                                         "ports": [{"protocol": "TCP", "port": 443}]}]


def test_render_keda_flag_writes_scaled_objects(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert render_cli(str(project), "--out", str(out), "--keda") == 0
    names = sorted(p.name for p in (out / "fraud-detection" / "kubernetes").iterdir())
    assert any("scaledobject" in n for n in names) and not any("horizontalpodautoscaler" in n for n in names)


def test_render_json_settings_and_bad_settings(project: Path, tmp_path: Path, capsys) -> None:
    good = tmp_path / "s.json"
    good.write_text(json.dumps({"nats_auth": True, "namespace": "fraud"}))
    assert render_cli(str(project), "--out", str(tmp_path / "out"), "--settings", str(good)) == 0
    assert "kubectl -n fraud create secret generic fraud-detection-nats" in capsys.readouterr().out
    for text, message in (('{"nope": 1}', "unknown setting 'nope'"),
                          ('{"keda_enabled": "yes"}', "keda_enabled must be true or false"),
                          ('{"egress_cidrs": "0.0.0.0/0"}', "egress_cidrs must be a list"),
                          ("[1, 2]", "must be an object"), ("{", "not valid JSON")):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        assert render_cli(str(project), "--out", str(tmp_path / "out"), "--settings", str(bad)) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"{bad}: error: ") and message in err, err
    assert render_cli(str(project), "--out", str(tmp_path / "out"), "--settings", str(tmp_path / "none.yaml")) == 2
    assert "none.yaml: error: " in capsys.readouterr().err
    assert render_cli(str(project), "--out", str(tmp_path / "out"), "--secret", "NOEQUALS") == 2
    assert "--secret 'NOEQUALS': write ENV=SECRET" in capsys.readouterr().err


def test_render_refuses_kafka_and_mqtt_with_the_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "w.kumeo").write_text('workflow Fraud {\n  source: NATS("a.in")\n  target: MQTT("alerts/x")\n'
                                      '  agents: [ DataProcessor(id: "p", input: source) ]\n}\n')
    assert render(tmp_path / "w.kumeo", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{tmp_path / 'w.kumeo'}:3:") and "MQTT targets cannot be deployed" in err, err
    assert not (tmp_path / "out").exists()


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


def test_plan_document_reads_back_and_puts_each_agent_on_a_line_of_its_own():
    from kumeo_iac.compile import Plan, compile_program
    from kumeo_iac.lang import parse_file

    example = Path(__file__).resolve().parents[2] / "examples" / "fraud_detection"
    plan = compile_program(parse_file(str(example / "fraud_detection.kumeo")).program, base_dir=example)
    document = plan.to_document()
    assert Plan.from_json(document) == plan
    agent_lines = [line for line in document.splitlines() if line.startswith('        {"backoff_seconds"')]
    assert len(agent_lines) == len(plan.workflows[0].agents)

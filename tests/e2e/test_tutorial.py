"""docs/tutorial.md runs as written: every ```sh block, in order, in one shell, and every ```text block (what the
tutorial says you will see) is found in the output of the commands just before it.

The shell is bash with the venv's ``bin/`` and the Pulumi toolchain (``make toolchain``) first on PATH, as the
tutorial asks, in a temporary folder. The only change made to the text: the fixed ports of the tutorial (4222 for
nats-server, 8765 for the dashboard) become free ones, so the test never meets another server. In a ```text block,
``…`` stands for anything, and the seconds of ``drained in 0.4 s`` for any duration.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from kumeo_iac.local import free_port

pytestmark = [pytest.mark.nats, pytest.mark.slow, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "tutorial.md"
TOOLCHAIN = ROOT / ".toolchain" / "bin"
VENV_BIN = Path(sys.executable).parent


def blocks(text: str) -> list[tuple[str, str]]:
    """Every fenced block of the tutorial, in order: (language, body)."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w+)\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)]


def expected(line: str) -> re.Pattern[str]:
    pattern = re.escape(line).replace("…", ".*")
    pattern = re.sub(r"drained\\ in\\ [\d\\.]+\\ s", r"drained\\ in\\ [\\d.]+\\ s", pattern)
    return re.compile(pattern)


class Shell:
    """One bash process running the blocks one after another (``cd`` and ``export`` carry over), each sourced from
    a file with standard input from /dev/null, so no command can read the next one."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.proc = subprocess.Popen(["bash", "--noprofile", "--norc"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, cwd=cwd, env=env, text=True, start_new_session=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.count = 0
        self._send("set -euo pipefail")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def run(self, block: str, timeout: float = 600) -> str:
        self.count += 1
        script = self.cwd / f".tutorial-block-{self.count}.sh"
        script.write_text(block)
        marker = f"__done_{uuid.uuid4().hex}__"
        self._send(f"source {script} < /dev/null; echo {marker}")
        out: list[str] = []
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"block {self.count} did not finish in {timeout:g} s:\n{block}\n"
                                     f"{''.join(out)}") from None
            if line is None:
                raise AssertionError(f"block {self.count} failed (exit {self.proc.wait()}):\n{block}\n{''.join(out)}")
            if line.strip() == marker:
                return "".join(out)
            out.append(line)

    def close(self) -> None:
        # The tutorial's background servers are in the shell's session: one signal to the group ends them all.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def test_every_command_of_the_tutorial_runs_and_shows_what_it_says(tmp_path):
    missing = [name for name in ("pulumi", "pulumi-language-python", "pulumi-resource-kubernetes")
               if not os.access(TOOLCHAIN / name, os.X_OK)]
    if missing:
        pytest.fail(f"the Pulumi toolchain is not built ({', '.join(missing)} missing from {TOOLCHAIN}); run "
                    "`make toolchain`", pytrace=False)
    text = TUTORIAL.read_text()
    nats, dashboard = str(free_port()), str(free_port())
    text = text.replace("4222", nats).replace("8765", dashboard)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "KUMEO_")) and k != "NATS_URL"}
    env.update(PATH=os.pathsep.join([str(VENV_BIN), str(TOOLCHAIN), env.get("PATH", "")]), HOME=str(home),
               PULUMI_HOME=str(home / ".pulumi"), PULUMI_SKIP_UPDATE_CHECK="true",
               PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true", VIRTUAL_ENV=str(VENV_BIN.parent))
    work = tmp_path / "work"
    work.mkdir()
    shell = Shell(work, env)
    ran: list[str] = []
    try:
        last = ""
        for language, body in blocks(text):
            if language == "sh":
                last = shell.run(body)
                ran.append(body)
            elif language == "text":
                for line in body.splitlines():
                    assert expected(line).search(last), f"the tutorial shows\n  {line}\nbut the output was\n{last}"
    finally:
        shell.close()

    # What the blocks did, beyond their output.
    project = work / "shop"
    assert sorted(p.name for p in (project / "rendered" / "1-manifest").iterdir())
    assert any("kumeo preview" in b for b in ran) and any("/approve" in b for b in ran)
    assert any("/replay" in b for b in ran)

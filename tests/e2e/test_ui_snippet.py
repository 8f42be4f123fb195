"""docs/ui.md's first snippet runs as written: a nats-server of its own, `kumeo run --follow` on the claims example,
and `kumeo dashboard` on the same server, which then shows the workflow live (issue 16: the snippet used to need a
nats-server nobody had started).

The only changes made to the text: its fixed ports (4222 for nats-server, 8765 for the dashboard) become free ones,
and the dashboard gets a known token (``KUMEO_DASHBOARD_TOKEN``) so the test can call its API. The snippet's last
command is the dashboard itself, in the foreground: the test reads its start line, asks the API, and stops the
whole shell (its background jobs included).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from kumeo_iac.local import free_port

pytestmark = [pytest.mark.nats, pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "ui-snippet-token"


def first_sh_block(text: str) -> str:
    found = re.search(r"^```sh\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    assert found, "docs/ui.md has no sh block"
    return found.group(1)


def api(url: str, path: str) -> dict:
    request = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def test_the_ui_snippet_starts_a_server_a_run_and_a_dashboard_that_sees_them():
    snippet = first_sh_block((ROOT / "docs" / "ui.md").read_text(encoding="utf-8"))
    assert "nats-server -js" in snippet and "kumeo dashboard" in snippet
    nats_port, ui_port = free_port(), free_port()
    script = snippet.replace("4222", str(nats_port)).replace(
        "kumeo dashboard ", f"kumeo dashboard --port {ui_port} ", 1)
    env = {**os.environ, "KUMEO_DASHBOARD_TOKEN": TOKEN,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    shell = subprocess.Popen(["bash", "--noprofile", "--norc", "-c", script], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert shell.stdout is not None
        seen: list[str] = []
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = shell.stdout.readline()
            if not line:
                break
            seen.append(line)
            found = re.search(r"open (http://[^/#\s]+)", line)
            url = found.group(1) if found else None
        assert url == f"http://127.0.0.1:{ui_port}", "".join(seen[-40:])

        files: dict = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            files = api(url, "/api/files")
            if files.get("connected"):
                break
            time.sleep(0.5)
        assert files.get("connected") is True and files["nats"] == f"nats://127.0.0.1:{nats_port}", files
        workflow = api(url, "/api/workflow")
        assert workflow["diagnostics"] == [] and workflow["error"] is None, workflow
        assert [wf["name"] for wf in workflow["workflows"]] == ["ClaimsTriage"], workflow["workflows"]
    finally:
        os.killpg(shell.pid, signal.SIGTERM)
        try:
            shell.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(shell.pid, signal.SIGKILL)
            shell.wait()

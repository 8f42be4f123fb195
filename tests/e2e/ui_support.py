"""What the browser tests of the web UI share: finding Chromium, child processes whose output is read while they
run, and waiting for a condition.

Needs Chromium (``apt-get install chromium`` → /usr/bin/chromium, or ``KUMEO_CHROMIUM=/path``), the Python
``playwright`` package (its bundled driver; no browser download), and the built front end (``make ui``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = Path(__file__).parent / "ui_demo"
IMAGES = ROOT / "docs" / "images"
STATIC = ROOT / "kumeo_iac" / "dashboard" / "static" / "index.html"
KUMEO = [sys.executable, "-m", "kumeo_iac.cli"]
CHROMIUM = os.environ.get("KUMEO_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: The token the tests give `kumeo dashboard` (KUMEO_DASHBOARD_TOKEN), so its URL is known.
TOKEN = "e2e-token"


def require_browser() -> Any:
    """playwright's sync API, or skip the module with what to install."""
    if not CHROMIUM:
        pytest.skip("Chromium is not installed (apt-get install -y chromium, or set KUMEO_CHROMIUM)",
                    allow_module_level=True)
    return pytest.importorskip("playwright.sync_api", reason="the Python package 'playwright' is not installed "
                                                             "(pip install playwright; no browser download needed)")


def require_built_front_end() -> None:
    if not STATIC.exists():
        pytest.fail(f"the front end is not built ({STATIC} is missing): run `make ui` "
                    "(cd ui && npm ci && npm run build)")


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


class Process:
    """A child process whose output goes to files (read while it runs), stopped with SIGTERM."""

    def __init__(self, args: list[str], directory: Path, name: str, env: dict[str, str] | None = None) -> None:
        self.out = directory / f"{name}.out"
        self.err = directory / f"{name}.err"
        self.proc = subprocess.Popen(args, stdout=self.out.open("wb"), stderr=self.err.open("wb"),
                                     stdin=subprocess.DEVNULL, cwd=ROOT, env={**os.environ, **(env or {})})

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_dashboard(path: Path, nats_url: str, directory: Path) -> tuple[Process, str]:
    """`kumeo dashboard PATH` on a free port; returns the process and the URL it printed (with the token)."""
    dashboard = Process([*KUMEO, "dashboard", str(path), "--nats", nats_url, "--port", "0"], directory,
                        "dashboard", env={"KUMEO_DASHBOARD_TOKEN": TOKEN})
    try:
        url = wait_for(lambda: (re.search(r"open (http://\S+)", dashboard.stderr()) or [None, None])[1]
                       or (None if dashboard.alive() else "exited"), 30,
                       "the dashboard to start")
    except AssertionError:
        dashboard.stop()
        raise AssertionError(f"the dashboard did not start: {dashboard.stderr()}") from None
    if url == "exited":
        raise AssertionError(f"the dashboard exited: {dashboard.stderr()}")
    return dashboard, url

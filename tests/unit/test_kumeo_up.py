"""``kumeo up`` and ``kumeo destroy`` show before they act, and ask.

The ``pulumi`` CLI is not installed here (the real engine is exercised under tests/engine/), so a fake stack stands
in for what ``auto.create_or_select_stack`` returns: it records every call with its keyword arguments and prints a
preview the way Pulumi does (through ``on_output``). Nothing is deployed. The terminal tests run the real ``kumeo``
entry point in a child process on a pseudo-terminal (``pty``), with the same fake stack installed by a small driver.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kumeo_iac.cli import main
from kumeo_iac.components import _automation

ROOT = Path(__file__).resolve().parents[2]

VALID = """\
workflow Tiny {
  source: NATS("tiny.in")
  target: NATS("tiny.out")
  agents: [ DataProcessor(id: "clean", input: source, config: { required_fields: ["id"] }) ]
}
"""

PREVIEW_TEXT = "+ kubernetes:apps/v1:Deployment tiny-clean create"


class Result:
    def __init__(self, changes: dict[str, int]) -> None:
        self.change_summary = changes
        self.summary = type("Summary", (), {"resource_changes": changes})()


class FakeStack:
    """Records calls (in ``events``, shared with the fake terminal) and prints a preview like Pulumi's."""

    def __init__(self, events: list[tuple[str, dict[str, Any]]], fail: str | None = None) -> None:
        self.events = events
        self.fail = fail

    def set_all_config(self, values: dict[str, Any], *, path: bool = False) -> None:
        self.events.append(("config", {"values": {k: v.value for k, v in values.items()}, "path": path}))

    def _call(self, name: str, on_output: Any, kwargs: dict[str, Any], changes: dict[str, int]) -> Result:
        self.events.append((name, kwargs))
        if name == self.fail:
            from pulumi import automation as auto

            raise auto.CommandError(auto._cmd.CommandResult(stdout="", stderr="error: boom", code=255))
        if name.startswith("preview"):
            on_output(PREVIEW_TEXT)
        return Result(changes)

    def preview(self, on_output: Any = None, **kwargs: Any) -> Result:
        return self._call("preview", on_output, kwargs, {"create": 7, "same": 2})

    def up(self, on_output: Any = None, **kwargs: Any) -> Result:
        return self._call("up", on_output, kwargs, {"create": 7, "same": 2})

    def preview_destroy(self, on_output: Any = None, **kwargs: Any) -> Result:
        return self._call("preview_destroy", on_output, kwargs, {"delete": 9})

    def destroy(self, on_output: Any = None, **kwargs: Any) -> Result:
        return self._call("destroy", on_output, kwargs, {"delete": 9})


class FakeTerminal(io.StringIO):
    """Standard input that is a terminal; each read is recorded in the same event list as the stack's calls."""

    def __init__(self, answer: str, events: list[tuple[str, dict[str, Any]]], tty: bool = True) -> None:
        super().__init__(answer)
        self.events = events
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty

    def readline(self, *args: Any) -> str:  # type: ignore[override]
        self.events.append(("ask", {}))
        return super().readline(*args)


class Harness:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
        self.monkeypatch = monkeypatch
        self.path = path
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.stacks_selected = 0
        self.fail: str | None = None
        from pulumi import automation as auto

        monkeypatch.setattr(_automation, "pulumi_cli", lambda: "/usr/local/bin/pulumi")
        monkeypatch.setattr(auto, "create_or_select_stack", self._select)
        self.terminal("")

    def _select(self, **kwargs: Any) -> FakeStack:
        self.stacks_selected += 1
        return FakeStack(self.events, self.fail)

    def terminal(self, answer: str, tty: bool = True) -> None:
        self.monkeypatch.setattr(sys, "stdin", FakeTerminal(answer, self.events, tty))

    def run(self, *argv: str) -> int:
        return main([argv[0], str(self.path), "--stack", "dev", *argv[1:]])

    def names(self) -> list[str]:
        return [name for name, _ in self.events if name != "config"]

    def call(self, name: str) -> dict[str, Any]:
        (kwargs,) = [kw for n, kw in self.events if n == name]
        return kwargs


@pytest.fixture
def kumeo(monkeypatch, tmp_path) -> Harness:
    path = tmp_path / "tiny.kumeo"
    path.write_text(VALID)
    return Harness(monkeypatch, path)


# -- up ------------------------------------------------------------------------------------------------------


def test_up_prints_the_preview_before_it_asks(kumeo, capsys):
    kumeo.terminal("y\n")
    assert kumeo.run("up") == 0
    assert kumeo.names() == ["preview", "ask", "up"]
    out, err = capsys.readouterr()
    assert PREVIEW_TEXT in out
    assert "kumeo: preview of stack 'dev': 7 to create, 2 unchanged" in err
    assert err.index("preview of stack") < err.index("Do you want to perform this update? [y/N]")
    assert "kumeo: stack 'dev' updated: 7 created, 2 unchanged" in err


@pytest.mark.parametrize("answer", ["n\n", "\n", "", "nope\n", "later\n"])
def test_anything_but_yes_aborts_with_nothing_applied(kumeo, capsys, answer):
    kumeo.terminal(answer)
    assert kumeo.run("up") == 1
    assert kumeo.names() == ["preview", "ask"]
    assert "update cancelled: nothing was changed" in capsys.readouterr().err


@pytest.mark.parametrize("answer", ["y\n", "Y\n", "yes\n", " YES \n"])
def test_yes_applies(kumeo, answer):
    kumeo.terminal(answer)
    assert kumeo.run("up") == 0
    assert kumeo.names() == ["preview", "ask", "up"]


def test_without_a_terminal_and_without_yes_up_refuses_before_touching_the_stack(kumeo, capsys):
    kumeo.terminal("y\n", tty=False)
    assert kumeo.run("up") == 1
    assert kumeo.events == [] and kumeo.stacks_selected == 0
    err = capsys.readouterr().err
    assert "standard input is not a terminal" in err and "--yes" in err and "Traceback" not in err


def test_yes_applies_without_asking_even_without_a_terminal(kumeo, capsys):
    kumeo.terminal("n\n", tty=False)
    assert kumeo.run("up", "--yes") == 0
    assert kumeo.names() == ["preview", "up"]
    out, err = capsys.readouterr()
    assert PREVIEW_TEXT in out and "[y/N]" not in err


def test_diff_refresh_and_targets_reach_the_preview_and_the_update(kumeo):
    urns = ["urn:pulumi:dev::tiny::kumeo:index:Workflow::tiny",
            "urn:pulumi:dev::tiny::kubernetes:apps/v1:Deployment::d"]
    assert kumeo.run("up", "--yes", "--diff", "--refresh", "--target", urns[0], "--target", urns[1]) == 0
    for name in ("preview", "up"):
        assert kumeo.call(name) == {"diff": True, "refresh": True, "target": urns}, name


def test_without_the_options_nothing_extra_is_asked_of_pulumi(kumeo):
    assert kumeo.run("up", "--yes") == 0
    assert kumeo.call("preview") == kumeo.call("up") == {"diff": False, "refresh": False, "target": None}


def test_update_plan_saves_the_preview_and_holds_the_update_to_it(kumeo):
    assert kumeo.run("up", "--yes", "--update-plan") == 0
    plan = kumeo.call("preview")["plan"]
    assert kumeo.call("up")["plan"] == plan and plan.endswith("plan.json")
    assert not Path(plan).parent.exists()  # a temporary directory, removed afterwards


def test_a_failing_preview_applies_nothing_and_says_what_pulumi_said(kumeo, capsys):
    kumeo.fail = "preview"
    kumeo.terminal("y\n")
    assert kumeo.run("up") == 1
    assert kumeo.names() == ["preview"]
    err = capsys.readouterr().err
    assert "kumeo: error: pulumi up failed: error: boom" in err and "Traceback" not in err


def test_bad_config_is_refused_before_pulumi_is_needed(kumeo, capsys, monkeypatch):
    monkeypatch.setattr(_automation, "pulumi_cli", lambda: None)
    assert kumeo.run("up", "--yes", "--config", "natsURL=nats://x:4222", "--config", "keda=yes please") == 1
    err = capsys.readouterr().err
    assert "kumeo: error: unknown stack config key kumeo:natsURL; did you mean kumeo:natsUrl?" in err
    assert "kumeo: error: stack config kumeo:keda must be true or false, not 'yes please'" in err
    assert kumeo.stacks_selected == 0


def test_config_entries_of_an_object_are_set_as_paths(kumeo):
    assert kumeo.run("up", "--yes", "--config", "namespace=tiny-dev", "--config", "secrets.VENDOR=v") == 0
    configs = [kw for name, kw in kumeo.events if name == "config"]
    assert configs == [{"values": {"kumeo:namespace": "tiny-dev"}, "path": False},
                       {"values": {"kumeo:secrets.VENDOR": "v"}, "path": True}]


# -- preview and destroy ---------------------------------------------------------------------------------------


def test_preview_never_asks_and_passes_the_options(kumeo, capsys):
    kumeo.terminal("", tty=False)
    assert kumeo.run("preview", "--diff", "--target", "urn:x") == 0
    assert kumeo.names() == ["preview"]
    assert kumeo.call("preview") == {"diff": True, "refresh": False, "target": ["urn:x"]}
    assert "[y/N]" not in capsys.readouterr().err


def test_destroy_shows_what_goes_then_asks(kumeo, capsys):
    kumeo.terminal("y\n")
    assert kumeo.run("destroy", "--refresh") == 0
    assert kumeo.names() == ["preview_destroy", "ask", "destroy"]
    assert kumeo.call("destroy") == {"diff": False, "refresh": True, "target": None}
    err = capsys.readouterr().err
    assert "9 to delete" in err and "Do you want to perform this destroy? [y/N]" in err


def test_destroy_declined_deletes_nothing(kumeo, capsys):
    kumeo.terminal("n\n")
    assert kumeo.run("destroy") == 1
    assert kumeo.names() == ["preview_destroy", "ask"]
    assert "destroy cancelled: nothing was changed" in capsys.readouterr().err


def test_destroy_without_a_terminal_needs_yes(kumeo):
    kumeo.terminal("", tty=False)
    assert kumeo.run("destroy") == 1 and kumeo.stacks_selected == 0
    assert kumeo.run("destroy", "--yes") == 0
    assert kumeo.names() == ["preview_destroy", "destroy"]


def test_only_up_and_destroy_take_yes_and_only_up_takes_update_plan():
    from kumeo_iac.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["destroy", "x", "--stack", "s", "-y"]).yes is True
    for argv in (["preview", "x", "--stack", "s", "--yes"], ["destroy", "x", "--stack", "s", "--update-plan"]):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
    assert isinstance(parser.parse_args(["up", "x", "--stack", "s"]), argparse.Namespace)


# -- a real terminal ---------------------------------------------------------------------------------------------

DRIVER = '''\
"""Runs the real `kumeo` entry point with a fake stack in place of the Automation API (records calls to a file)."""
import json
import sys

from pulumi import automation as auto

from kumeo_iac.cli import main
from kumeo_iac.components import _automation

record = sys.argv.pop(1)
events = []


class Result:
    change_summary = {"create": 1}
    summary = type("Summary", (), {"resource_changes": {"create": 1}})()


class FakeStack:
    def set_all_config(self, values, path=False):
        pass

    def _record(self, name, kwargs):
        events.append([name, kwargs])
        with open(record, "w") as f:
            json.dump(events, f)
        return Result()

    def preview(self, on_output=None, **kwargs):
        on_output("PREVIEW: + tiny-clean create")
        return self._record("preview", kwargs)

    def up(self, on_output=None, **kwargs):
        return self._record("up", kwargs)


_automation.pulumi_cli = lambda: "/usr/local/bin/pulumi"
auto.create_or_select_stack = lambda **kwargs: FakeStack()
sys.exit(main(sys.argv[1:]))
'''


def read_until(fd: int, marker: bytes, timeout: float = 60.0) -> bytes:
    """Read from the pty's master side until ``marker`` shows up (or the child closes it)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    return seen


def on_a_terminal(tmp_path: Path, answer: bytes | None, *extra: str) -> tuple[int, bytes, list]:
    """Run `kumeo up` on a pseudo-terminal, answer the question (if asked) and return (exit code, output, calls)."""
    path = tmp_path / "tiny.kumeo"
    path.write_text(VALID)
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    record = tmp_path / "calls.json"
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "dumb"}
    child = subprocess.Popen([sys.executable, str(driver), str(record), "up", str(path), "--stack", "dev", *extra],
                             stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=env, close_fds=True)
    os.close(slave)
    try:
        output = read_until(master, b"[y/N]")
        if answer is not None and b"[y/N]" in output:
            os.write(master, answer)
        output += read_until(master, b"\x00never\x00", timeout=60)
        code = child.wait(timeout=60)
    finally:
        os.close(master)
        if child.poll() is None:
            child.kill()
    calls = json.loads(record.read_text()) if record.exists() else []
    return code, output, calls


@pytest.mark.timeout(180)
def test_on_a_real_terminal_the_preview_comes_first_and_y_applies(tmp_path):
    code, output, calls = on_a_terminal(tmp_path, b"y\n", "--diff")
    assert code == 0, output.decode(errors="replace")
    assert output.index(b"PREVIEW: + tiny-clean create") < output.index(b"Do you want to perform this update? [y/N]")
    assert [name for name, _ in calls] == ["preview", "up"]
    assert calls[1][1]["diff"] is True


@pytest.mark.timeout(180)
def test_on_a_real_terminal_n_applies_nothing(tmp_path):
    code, output, calls = on_a_terminal(tmp_path, b"n\n")
    assert code == 1, output.decode(errors="replace")
    assert b"update cancelled: nothing was changed" in output
    assert [name for name, _ in calls] == ["preview"]


@pytest.mark.timeout(180)
def test_in_a_pipe_without_yes_the_real_command_refuses(tmp_path):
    path = tmp_path / "tiny.kumeo"
    path.write_text(VALID)
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    record = tmp_path / "calls.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(driver), str(record), "up", str(path), "--stack", "dev"],
                          input="y\n", capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "standard input is not a terminal" in done.stderr and "Traceback" not in done.stderr
    assert not record.exists()

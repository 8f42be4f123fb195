"""``kumeo preview|up|destroy`` (Pulumi's Automation API, inline program) on the fraud-detection example, driving
the real engine: the same toolchain, a ``file://`` backend, streams on a real nats-server, and the Kubernetes
objects rendered to YAML through the default provider's ``kubernetes:renderYamlToDirectory`` stack setting.

``kumeo`` is run as ``<venv>/bin/kumeo`` with the venv *not* activated (its ``bin/`` is not on PATH), as ``make``
and a pipx install run it.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from engine_support import (
    VENV,
    compiled_plan,
    consumer_info,
    copy_example,
    expected_objects,
    rendered_objects,
    run_command,
    stream_info,
)

pytestmark = [pytest.mark.nats, pytest.mark.timeout(900)]

KUMEO = VENV / "bin" / "kumeo"
STACK = "dev"


@pytest.fixture(scope="module")
def ws(engine_env: dict[str, str], jetstream: Any, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("kumeo-cli")
    workflow = copy_example(root / "workflow")
    backend, render = root / "backend", root / "rendered"
    backend.mkdir()
    render.mkdir()
    url = jetstream.url
    return SimpleNamespace(
        root=root,
        workflow=workflow,
        render=render,
        url=url,
        env={**engine_env, "PULUMI_BACKEND_URL": f"file://{backend}"},
        config=[
            "--config", f"natsUrl={url}",
            "--config", f"jetstreamUrl={url}",
            "--config", "awaitKubernetes=false",
            "--config", f"kubernetes:renderYamlToDirectory={render}",
        ],
        plan=compiled_plan(workflow, url),
        expected=expected_objects(workflow, url),
    )


def kumeo(ws: SimpleNamespace, *args: str, check: bool = True) -> Any:
    return run_command([str(KUMEO), *args], cwd=ws.root, env=ws.env, check=check, timeout=420)


def created_count(stderr: str) -> int:
    match = re.search(r"(\d+) to create", stderr)
    assert match, stderr
    return int(match.group(1))


def test_kumeo_preview_shows_what_up_would_create(ws: SimpleNamespace) -> None:
    result = kumeo(ws, "preview", str(ws.workflow), "--stack", STACK, *ws.config)
    # Every stream, consumer, bucket and Kubernetes object, plus the stack and the Workflow component.
    assert created_count(result.stderr) == len(ws.expected) + 2, result.stderr
    assert all(stream_info(ws.url, s.name) is None for s in ws.plan.streams)
    assert rendered_objects(ws.render) == {}


def test_kumeo_up_without_a_terminal_or_yes_changes_nothing(ws: SimpleNamespace) -> None:
    result = kumeo(ws, "up", str(ws.workflow), "--stack", STACK, check=False)
    assert result.returncode == 1
    assert "--yes" in result.stderr
    assert all(stream_info(ws.url, s.name) is None for s in ws.plan.streams)


def test_kumeo_up_deploys_the_workflow(ws: SimpleNamespace) -> None:
    result = kumeo(ws, "up", str(ws.workflow), "--stack", STACK, "--yes")
    assert f"stack '{STACK}' updated" in result.stderr, result.stderr
    for s in ws.plan.streams:
        assert stream_info(ws.url, s.name) is not None, f"stream {s.name} was not created"
    for c in ws.plan.consumers:
        assert consumer_info(ws.url, c.stream, c.durable) is not None, f"consumer {c.durable} was not created"
    for kv in ws.plan.key_values:
        assert stream_info(ws.url, f"KV_{kv.bucket}") is not None, f"KV bucket {kv.bucket} was not created"
    kubernetes = {k for k in ws.expected if k[0] not in ("stream", "consumer", "kv")}
    assert set(rendered_objects(ws.render)) == kubernetes
    # The workspace lives next to the file (.kumeo/pulumi/<project>), not in the current directory.
    assert (Path(ws.workflow).parent / ".kumeo" / "pulumi").is_dir()

    again = kumeo(ws, "preview", str(ws.workflow), "--stack", STACK)
    assert "no changes" in again.stderr, again.stderr


def test_kumeo_destroy_removes_what_up_created(ws: SimpleNamespace) -> None:
    deployed = [s.name for s in ws.plan.streams if stream_info(ws.url, s.name) is not None]
    assert deployed, "nothing to destroy: `kumeo up` did not deploy the workflow (see the test before)"
    kumeo(ws, "destroy", str(ws.workflow), "--stack", STACK, "--yes")
    assert {s.name: stream_info(ws.url, s.name) for s in ws.plan.streams} == {s.name: None for s in ws.plan.streams}
    assert rendered_objects(ws.render) == {}

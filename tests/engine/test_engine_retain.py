"""``kumeo:retainStreams true`` under the real engine: ``pulumi destroy`` keeps the streams and KV buckets (and their
messages) on the server, and a later ``pulumi up`` takes them over only when ``kumeo:adoptStreams`` says so
(docs/deploy.md, Stack configuration)."""

from __future__ import annotations

from typing import Any

import pytest
from engine_support import Stack, compiled_plan, held_data, publish_marks

pytestmark = [pytest.mark.nats, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def stack(engine_env: dict[str, str], jetstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    root = tmp_path_factory.mktemp("retain")
    return Stack(root, engine_env, project="kumeo-engine-retain").create(
        {
            "kumeo:natsUrl": jetstream.url,
            "kumeo:jetstreamUrl": jetstream.url,
            "kumeo:awaitKubernetes": "false",
            "kumeo:retainStreams": "true",
        }
    )


@pytest.fixture(scope="module")
def plan(stack: Stack, jetstream: Any) -> Any:
    return compiled_plan(stack.workflow_file, jetstream.url)


@pytest.fixture(scope="module")
def held(stack: Stack, jetstream: Any, plan: Any) -> dict[str, Any]:
    """What every stream and bucket holds after ``pulumi up`` and one message (one KV value) published into each."""
    stack.up()
    return publish_marks(jetstream.url, plan)


def test_destroy_keeps_retained_streams_and_buckets_with_their_messages(
    stack: Stack, jetstream: Any, plan: Any, held: dict[str, Any]
) -> None:
    assert stack.rendered(), "pulumi up rendered nothing"
    stack.destroy()
    assert held_data(jetstream.url, plan) == held
    # The Kubernetes objects are not retained: their files are gone, and so is the stack's state of everything.
    assert stack.rendered() == {}
    assert stack.outputs() == {}
    assert stack.urns("") == []


def test_up_over_retained_streams_needs_adopt_streams(
    stack: Stack, jetstream: Any, plan: Any, held: dict[str, Any]
) -> None:
    refused = stack.pulumi("up", "--yes", "--skip-preview", check=False)
    assert refused.returncode != 0, refused.stdout
    assert "kumeo:adoptStreams" in refused.stdout + refused.stderr, refused.stdout + refused.stderr
    assert held_data(jetstream.url, plan) == held, "a refused update changed the streams"

    stack.config_set("kumeo:adoptStreams", "true")
    stack.up()
    assert held_data(jetstream.url, plan) == held, "adopting the streams lost messages"
    preview = stack.preview()
    assert preview.changes() == [], preview.summary()

"""A stack recorded before the JetStream resources had their own types, under the real engine.

Stacks deployed by earlier Kumeo versions hold every stream, consumer and KV bucket as ``pulumi-python:dynamic:
Resource``. Each resource carries an alias to the URN it had then, so the engine finds the old state under the new
type: the next preview changes nothing and no stream is deleted (a missing or wrong alias would show a delete of
every old resource and a create of every new one, and the creates would fail on the streams that still exist).

The old state is made from a fresh one by rewriting its JetStream types back to the old type (``pulumi stack export``
/ ``import``): the inputs and outputs of those resources did not change, only their type.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from engine_support import DESTRUCTIVE, DYNAMIC_TYPE_PREFIX, Stack, compiled_plan, held_data, publish_marks

pytestmark = [pytest.mark.nats, pytest.mark.timeout(900)]

LEGACY_TYPE = "pulumi-python:dynamic:Resource"


def _legacy(deployment: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The exported state with every JetStream resource's type (in its type, URN and references) made the old one."""
    text = json.dumps(deployment)
    typed = sorted({r["type"] for r in deployment["deployment"]["resources"]
                    if r["type"].startswith(DYNAMIC_TYPE_PREFIX + "/")})
    count = sum(1 for r in deployment["deployment"]["resources"] if r["type"] in typed)
    for type_ in typed:
        text = text.replace(type_, LEGACY_TYPE)
    return json.loads(text), count


def test_a_stack_recorded_under_the_old_type_keeps_its_streams(
    engine_env: dict[str, str], jetstream: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    stack = Stack(tmp_path_factory.mktemp("legacy"), engine_env, project="kumeo-engine-legacy").create(
        {"kumeo:natsUrl": jetstream.url, "kumeo:jetstreamUrl": jetstream.url, "kumeo:awaitKubernetes": "false"}
    )
    plan = compiled_plan(stack.workflow_file, jetstream.url)
    stack.up()
    held = publish_marks(jetstream.url, plan)

    old, count = _legacy(stack.export())
    assert count >= 3, "the example should have streams, consumers and buckets"
    state_file = stack.root / "legacy-state.json"
    state_file.write_text(json.dumps(old))
    stack.pulumi("stack", "import", "--file", str(state_file))
    assert len(stack.urns(LEGACY_TYPE)) == count, "the import did not record the old type"

    preview = stack.preview()
    destructive = [s for s in preview.steps if s.op in DESTRUCTIVE or s.op == "create"]
    assert destructive == [], preview.summary()

    stack.up()
    assert stack.urns(LEGACY_TYPE) == [], "the update left resources under the old type"
    assert len(stack.urns(DYNAMIC_TYPE_PREFIX + "/")) == count
    assert held_data(jetstream.url, plan) == held, "moving to the new types lost messages"

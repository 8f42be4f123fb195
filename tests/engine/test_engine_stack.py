"""One stack of the fraud-detection example under the real Pulumi engine, through its life: created, one agent
changed, the NATS URL respelled, drift repaired, an API key added as a secret, destroyed.

The tests run in file order on one stack and one nats-server (module-scoped fixtures). Each later test first runs
``pulumi up --skip-preview`` (the ``deployed`` fixture), so it starts from a stack that matches its program and
config even when the test before failed half-way. Kubernetes objects are rendered to YAML files
(``renderYamlToDirectory``); streams, consumers and KV buckets are created on the real server by the JetStream
dynamic providers. Where a test checks several facts (URL respelled, drift), it collects every failure and applies
the change even after a failed preview, so one run reports all of them.

Run: ``.venv/bin/python -m pytest tests/engine`` (needs ``make toolchain``).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from engine_support import (
    COMPONENT_TYPE,
    DESTRUCTIVE,
    Stack,
    compiled_plan,
    consumer_info,
    consumers_created,
    expected_objects,
    files_containing,
    held_data,
    on_server,
    publish_marks,
    secret_spellings,
    stream_info,
)

pytestmark = [pytest.mark.nats, pytest.mark.timeout(900)]

PROMPT_OLD = "In one sentence, say why it may or may not be fraud."
PROMPT_NEW = "In two short sentences, say why it may or may not be fraud."
CHANGED_AGENT_DEPLOYMENT = ("Deployment", "fraud-detection-explain")
SECRET = "sk-test-123456"
SECOND = 1_000_000_000


@pytest.fixture(scope="module")
def stack(engine_env: dict[str, str], jetstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    root = tmp_path_factory.mktemp("stack")
    return Stack(root, engine_env, project="kumeo-engine-stack").create(
        {"kumeo:natsUrl": jetstream.url, "kumeo:jetstreamUrl": jetstream.url, "kumeo:awaitKubernetes": "false"}
    )


@pytest.fixture(scope="module")
def plan(stack: Stack, jetstream: Any) -> Any:
    """The example's Plan, compiled by kumeo_iac from the stack's copy of the file (before any test edits it)."""
    return compiled_plan(stack.workflow_file, jetstream.url)


@pytest.fixture
def deployed(stack: Stack) -> Stack:
    """The stack, brought in line with its program and config by ``pulumi up`` (a no-op when the test before left
    it so), so a test does not inherit what an earlier failing one left pending."""
    stack.up()
    return stack


def rendered_contents(stack: Stack) -> dict[tuple[str, str], bytes]:
    return {key: path.read_bytes() for key, path in stack.rendered().items()}


# -- 1. a new stack -------------------------------------------------------------------------------------------


def test_preview_of_a_new_stack_lists_every_stream_consumer_bucket_and_object(stack: Stack, jetstream: Any) -> None:
    preview = stack.preview()
    expected = expected_objects(stack.workflow_file, jetstream.url)
    listed = preview.ops()
    assert set(listed) - expected == set(), f"the preview registers objects compile does not:\n{preview.summary()}"
    assert expected - set(listed) == set(), f"the preview misses objects compile has:\n{preview.summary()}"
    assert {k: ops for k, ops in listed.items() if ops != {"create"}} == {}
    assert COMPONENT_TYPE in {s.type for s in preview.steps}
    # Every JetStream and Kubernetes object is a child of the Workflow component.
    for step in preview.steps:
        if step.key is not None:
            assert f"{COMPONENT_TYPE}$" in step.urn, step.urn


def test_up_creates_the_streams_consumers_buckets_and_manifests(
    stack: Stack, jetstream: Any, plan: Any
) -> None:
    stack.pulumi("up", "--yes")  # as a user runs it: preview, then update
    url = jetstream.url

    for s in plan.streams:
        info = stream_info(url, s.name)
        assert info is not None, f"stream {s.name} was not created"
        assert sorted(info.config.subjects) == sorted(s.config["subjects"])
        assert info.config.max_age * SECOND == pytest.approx(s.config["max_age"])
    for c in plan.consumers:
        info = consumer_info(url, c.stream, c.durable)
        assert info is not None, f"consumer {c.stream}/{c.durable} was not created"
        assert info.config.durable_name == c.durable
        want = c.config.get("filter_subjects") or [c.config.get("filter_subject")]
        got = info.config.filter_subjects or [info.config.filter_subject]
        assert sorted(got) == sorted(want)
    for kv in plan.key_values:
        assert stream_info(url, f"KV_{kv.bucket}") is not None, f"KV bucket {kv.bucket} was not created"

    rendered = stack.rendered()
    kubernetes = {k for k in expected_objects(stack.workflow_file, url) if k[0] not in ("stream", "consumer", "kv")}
    assert set(rendered) == kubernetes
    assert {p.parent.name for p in rendered.values()} == {"1-manifest"}
    deployment = yaml.safe_load(rendered[CHANGED_AGENT_DEPLOYMENT].read_text())
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["NATS_URL"] == url

    outputs = stack.outputs()
    assert sorted(outputs["streams"]) == sorted(s.name for s in plan.streams)
    assert sorted(outputs["deployments"]) == sorted(n for k, n in kubernetes if k == "Deployment")
    assert outputs["namespace"] == plan.namespace


def test_a_preview_right_after_up_changes_nothing(deployed: Stack) -> None:
    preview = deployed.preview()
    assert preview.changes() == [], preview.summary()


# -- 2. one agent changed -------------------------------------------------------------------------------------


def test_changing_one_agent_updates_only_its_deployment(deployed: Stack, jetstream: Any, plan: Any) -> None:
    text = deployed.workflow_file.read_text()
    assert PROMPT_OLD in text
    deployed.workflow_file.write_text(text.replace(PROMPT_OLD, PROMPT_NEW))
    before = rendered_contents(deployed)
    consumers_before = consumers_created(jetstream.url, plan)

    preview = deployed.preview()
    changes = [(s.op, s.key) for s in preview.changes()]
    assert changes == [("update", CHANGED_AGENT_DEPLOYMENT)], preview.summary()

    deployed.up()
    after = rendered_contents(deployed)
    assert {k for k in before if after.get(k) != before[k]} == {CHANGED_AGENT_DEPLOYMENT}
    assert set(after) == set(before)
    assert PROMPT_NEW in json.dumps(yaml.safe_load(after[CHANGED_AGENT_DEPLOYMENT]))
    assert consumers_created(jetstream.url, plan) == consumers_before


# -- 3. the deployer's NATS URL respelled -------------------------------------------------------------------------


def test_respelling_the_nats_url_replaces_nothing_and_keeps_the_messages(
    deployed: Stack, jetstream: Any, plan: Any
) -> None:
    url = jetstream.url
    respelled = url.replace("127.0.0.1", "localhost")
    held = publish_marks(url, plan)
    consumers_before = consumers_created(url, plan)
    deployed.config_set("kumeo:natsUrl", respelled)
    deployed.config_set("kumeo:jetstreamUrl", respelled)

    problems = []
    preview = deployed.preview(check=False)
    if preview.result.returncode != 0:
        problems.append("the preview failed:\n" + preview.errors())
    destructive = [s for s in preview.steps if s.op in DESTRUCTIVE or s.op == "create"]
    if destructive:
        problems.append(f"the preview creates, replaces or deletes: {destructive}")
    # Apply it even so: what matters most is whether the messages survive.
    deployed.up()
    if held_data(url, plan) != held:
        problems.append(f"messages or KV values were lost: before {held}, after {held_data(url, plan)}")
    if consumers_created(url, plan) != consumers_before:
        problems.append(f"consumers were re-created: before {consumers_before}, after {consumers_created(url, plan)}")
    assert problems == [], "\n".join(problems) + "\n--- preview ---\n" + preview.summary()


# -- 4. drift ---------------------------------------------------------------------------------------------------


def test_a_refresh_without_drift_leaves_nothing_to_do(deployed: Stack) -> None:
    refresh = deployed.refresh_jetstream("--skip-preview", "--diff")
    assert "~ " not in refresh.stdout, refresh.stdout  # nothing read back differs from the state
    preview = deployed.preview()
    assert preview.changes() == [], preview.summary()


def test_drift_on_the_server_is_refreshed_and_repaired(deployed: Stack, jetstream: Any, plan: Any) -> None:
    url = jetstream.url
    stream = plan.streams[0]
    wanted_max_age_s = stream.config["max_age"] / SECOND
    wanted_per_subject = stream.config["max_msgs_per_subject"]

    async def drift(js: Any) -> None:
        config = (await js.stream_info(stream.name)).config
        config.max_age = 3600.0
        config.max_msgs_per_subject = 10
        await js.update_stream(config)

    on_server(url, drift)
    assert stream_info(url, stream.name).config.max_age == pytest.approx(3600.0)

    refresh = deployed.refresh_jetstream("--skip-preview", "--diff")
    for field in ("max_age", "max_msgs_per_subject"):  # `~ max_age : 604800000000000 => 3600000000000`
        assert re.search(rf"~ {field}\s*:.*=>", refresh.stdout), refresh.stdout

    problems = []
    preview = deployed.preview(check=False)
    if preview.result.returncode != 0:
        problems.append("the preview failed:\n" + preview.errors())
    steps = preview.by_key().get(("stream", stream.name), [])
    if [s.op for s in steps] != ["update"] or not {"config.max_age", "config.max_msgs_per_subject"} <= set(
        steps[0].diff_keys
    ):
        problems.append(f"the preview does not update max_age and max_msgs_per_subject of {stream.name}: {steps}")
    if any(s.op in DESTRUCTIVE for s in preview.steps):
        problems.append("the preview replaces or deletes something")

    deployed.up()
    config = stream_info(url, stream.name).config
    if (config.max_age, config.max_msgs_per_subject) != (pytest.approx(wanted_max_age_s), wanted_per_subject):
        problems.append(f"`pulumi up` left max_age={config.max_age}s max_msgs_per_subject="
                        f"{config.max_msgs_per_subject}; the Plan says {wanted_max_age_s}s and {wanted_per_subject}")
    after = deployed.preview(check=False)
    if after.changes() or after.result.returncode != 0:
        problems.append(f"a preview after the repair is not empty:\n{after.summary()}")
    assert problems == [], "\n".join(problems) + "\n--- preview ---\n" + preview.summary()


# -- 5. secrets -------------------------------------------------------------------------------------------------


def test_an_api_key_set_as_secret_never_appears_in_plain_text(deployed: Stack, plan: Any) -> None:
    deployed.config_set("kumeo:openaiApiKey", SECRET, secret=True)
    listed = deployed.pulumi("config").stdout
    assert SECRET not in listed
    assert any("kumeo:openaiApiKey" in line and "[secret]" in line for line in listed.splitlines()), listed

    preview = deployed.preview()
    shown = preview.result.stdout + preview.result.stderr
    assert SECRET not in shown
    changes = {(s.op, s.key) for s in preview.changes()}
    secret_name = f"{plan.slug}-secrets"
    # The key reaches a Secret of its own and the pods of the LLM agent (the only one reading model-provider keys).
    assert changes == {("create", ("Secret", secret_name)), ("update", CHANGED_AGENT_DEPLOYMENT)}, preview.summary()
    (secret_step,) = preview.by_key()[("Secret", secret_name)]
    # The Kubernetes provider's check turns stringData into data; either way the value is shown masked.
    values = {k: secret_step.inputs[k] for k in ("data", "stringData") if secret_step.inputs.get(k) is not None}
    assert values and "[secret]" in json.dumps(values), secret_step.inputs

    up = deployed.up()
    assert SECRET not in up.stdout + up.stderr
    output_text = deployed.pulumi("stack", "output").stdout + deployed.pulumi("stack", "output", "--json").stdout
    assert SECRET not in output_text
    exported = deployed.pulumi("stack", "export").stdout
    for how, spelled in secret_spellings(SECRET).items():
        assert spelled not in exported, f"`pulumi stack export` shows the key ({how})"
        found = list(files_containing(deployed.backend_dir, spelled))
        assert found == [], f"the key is stored in {how} in {found}"
    # The searches are not vacuous: the state is plain JSON, and it does hold the key (encrypted).
    assert list(files_containing(deployed.backend_dir, plan.streams[0].name))
    assert SECRET in deployed.pulumi("stack", "export", "--show-secrets").stdout


# -- 6. destroy -------------------------------------------------------------------------------------------------


def test_destroy_deletes_streams_and_buckets_and_the_rendered_files(
    deployed: Stack, jetstream: Any, plan: Any
) -> None:
    deployed.destroy()
    url = jetstream.url
    assert {s.name: stream_info(url, s.name) for s in plan.streams} == {s.name: None for s in plan.streams}
    assert {kv.bucket: stream_info(url, f"KV_{kv.bucket}") for kv in plan.key_values} == {
        kv.bucket: None for kv in plan.key_values
    }
    assert deployed.rendered() == {}
    assert deployed.outputs() == {}


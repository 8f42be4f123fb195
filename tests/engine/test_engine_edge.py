"""An edge workflow (issue 17, item 4) deployed by the Workflow component under the real engine: the central NATS
gets only the hub stream that sources the site's results; the site's own streams and consumers are never created
there (the edge pod creates them on its leaf); the Kubernetes provider renders one StatefulSet with the leaf
nats-server and the edge process."""

from __future__ import annotations

import asyncio
from typing import Any

import nats
import pytest
import yaml
from engine_support import Stack

pytestmark = [pytest.mark.nats, pytest.mark.timeout(900)]

EDGE_WORKFLOW = """\
workflow SiteSensors {
  source: NATS("sensors.raw")
  target: NATS("sensors.clean")
  agents: [
    DataProcessor(id: "clean", input: source, config: { required_fields: ["id"] }),
    DataProcessor(id: "enrich", input: clean.output)
  ]
  deployment: {
    profile: "edge",
    leaf: { hub: "nats-leaf://hub.example.com:7422", credentials_secret: "site-leaf", domain: "plant-7" }
  }
}
"""
HUB_STREAM = "KUMEO_SITE_SENSORS_EDGE_PLANT_7"


def server_streams(url: str) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        nc = await nats.connect(url)
        try:
            return {info.config.name: info.config for info in await nc.jetstream().streams_info()}
        finally:
            await nc.close()

    return asyncio.run(read())


def test_the_component_creates_only_the_hub_stream_and_renders_the_edge_pod(
    engine_env: dict[str, str], jetstream: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    stack = Stack(tmp_path_factory.mktemp("edge"), engine_env, project="kumeo-engine-edge").create(
        {"kumeo:natsUrl": jetstream.url, "kumeo:jetstreamUrl": jetstream.url, "kumeo:awaitKubernetes": "false"}
    )
    stack.workflow_file.write_text(EDGE_WORKFLOW, encoding="utf-8")
    before = set(server_streams(jetstream.url))

    stack.up()

    # KUMEO_AUDIT is the deployers' audit trail (docs/security.md), on every server a deployer writes to
    created = {name: config for name, config in server_streams(jetstream.url).items()
               if name not in before and name != "KUMEO_AUDIT"}
    assert set(created) == {HUB_STREAM}, sorted(created)
    sources = {(s.name, s.external.api if s.external else None) for s in created[HUB_STREAM].sources or []}
    assert sources == {("KUMEO_SITE_SENSORS", "$JS.plant-7.API"), ("KUMEO_SITE_SENSORS_TARGETS", "$JS.plant-7.API")}
    assert stack.outputs()["streams"] == [HUB_STREAM]
    # the durables the edge process binds on its leaf; none of them is created on the hub
    assert sorted(stack.outputs()["consumers"]) == ["clean", "enrich"]

    rendered = stack.rendered()
    (pod_file,) = [path for (kind, name), path in rendered.items() if kind == "StatefulSet"]
    pod = yaml.safe_load(pod_file.read_text())
    assert pod["metadata"]["name"] == "site-sensors-edge"
    assert [c["name"] for c in pod["spec"]["template"]["spec"]["containers"]] == ["nats", "edge"]
    assert not [key for key in rendered if key[0] == "Deployment"]

    preview = stack.preview()
    assert preview.changes() == [], preview.summary()

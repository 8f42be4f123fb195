"""Changing a partitioned agent's N is previewed (issue 17, item 1): the stream provider's diff of a partition
stream whose ``{{partition(N,1)}}`` changes warns, naming the stream, the agent, old → new N, what happens to
in-flight events and their order, and where the docs say how to drain. Plain dicts, as the engine hands them; the
partition stream's config is the one Kumeo compiles."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from totals_workflow import PARTITION_STREAM, totals

from kumeo_iac.errors import KumeoDeployError
from kumeo_providers import StreamProvider, UndrainedLanesError
from kumeo_providers._lanes import LaneBacklog, partition_change, undrained_message


def partition_stream(parts: int) -> dict[str, Any]:
    [stream] = [s for s in totals(parts).streams if s.role == "partitions"]
    assert stream.name == PARTITION_STREAM
    return {"server_url": "nats://127.0.0.1:4222", "config": dict(stream.config)}


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "kumeo_providers.provider" and r.levelno == logging.WARNING]


@pytest.mark.parametrize(("old", "new", "stranded"), [(4, 2, "lanes 2…3"), (2, 4, None)])
def test_a_preview_of_a_new_partition_count_warns_what_happens_to_events_in_flight(
        caplog: pytest.LogCaptureFixture, old: int, new: int, stranded: str | None) -> None:
    provider = StreamProvider()
    olds, news = partition_stream(old), partition_stream(new)
    checked = provider.check(olds, news)
    assert checked.failures == []  # an update, not a replacement: nothing refuses it at preview

    with caplog.at_level(logging.WARNING, logger="kumeo_providers.provider"):
        diff = provider.diff(PARTITION_STREAM, olds, checked.inputs)

    assert diff.changes is True and diff.replaces == []
    [message] = warnings(caplog)
    assert message.startswith(f"stream {PARTITION_STREAM} (partitioned agent total): partitions {old} → {new}.")
    assert "keep the lane they were put in" in message
    assert f"hashed over {new} lanes" in message
    assert "order across the change is not kept" in message
    assert 'docs/deploy.md, "Partitioned agents" → "Changing N"' in message
    assert "http" not in message
    if stranded:
        assert f"the events still waiting on {stranded} would have no pod" in message
    else:
        assert "no pod" not in message


def test_the_same_partition_count_or_another_stream_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    provider = StreamProvider()
    olds = partition_stream(4)
    news = {**olds, "config": {**olds["config"], "description": "another description"}}
    plain = {"server_url": "nats://127.0.0.1:4222", "config": {"name": "KUMEO_TOTALS", "subjects": ["kumeo.t.>"]}}
    with caplog.at_level(logging.WARNING, logger="kumeo_providers.provider"):
        assert provider.diff(PARTITION_STREAM, olds, news).changes is True
        assert provider.diff("KUMEO_TOTALS", plain, {**plain, "config": {**plain["config"], "max_msgs": 5}}).changes
    assert warnings(caplog) == []


def test_the_partition_count_is_read_from_the_transform_and_unknowns_are_no_change() -> None:
    four, two = partition_stream(4)["config"], partition_stream(2)["config"]
    assert partition_change(four, two) == (4, 2)
    assert partition_change(four, four) is None
    # not a partition stream any more: nothing to compare
    assert partition_change(four, {"name": PARTITION_STREAM}) is None
    assert partition_change("<unknown>", two) is None


def test_the_refusal_names_each_lane_and_what_it_holds_and_is_a_deploy_error() -> None:
    message = undrained_message(f"change the partitions of stream {PARTITION_STREAM} from 4 to 2",
                                [LaneBacklog("total_p1", 3, 1), LaneBacklog("total_p3", 0, 1)])
    assert message.startswith(f"refusing to change the partitions of stream {PARTITION_STREAM} from 4 to 2: ")
    assert "total_p1: 3 pending, 1 unacknowledged; total_p3: 0 pending, 1 unacknowledged" in message
    assert "Changing N" in message
    assert issubclass(UndrainedLanesError, KumeoDeployError)

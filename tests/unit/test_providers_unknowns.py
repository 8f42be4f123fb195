"""Unknown inputs during a preview, as the engine's dynamic-provider host hands them to ``check`` and ``diff``.

The host deserialises with ``keep_unknowns=True``, which gives ``pulumi.output.Unknown`` objects (the RPC sentinel
string appears elsewhere); both must read as "not known yet", never as a wrong value. ``tests/engine`` runs the
same previews through the real engine.
"""

from __future__ import annotations

from pulumi.output import Unknown
from pulumi.runtime.rpc import UNKNOWN

from kumeo_providers._provider import contains_unknown
from kumeo_providers.consumer import ConsumerProvider


def test_both_spellings_of_unknown_are_unknown_at_any_depth():
    for unknown in (Unknown(), UNKNOWN):
        assert contains_unknown(unknown)
        assert contains_unknown({"a": [1, {"b": unknown}]})
    assert not contains_unknown({"a": [1, {"b": "KUMEO"}]})


def test_a_consumer_whose_stream_is_not_known_yet_passes_check():
    news = {"stream": Unknown(), "server_url": Unknown(),
            "config": {"durable_name": "score", "ack_policy": "explicit", "filter_subjects": ["x.in"]}}
    result = ConsumerProvider().check({}, news)
    assert result.failures == []
    news["stream"] = 42
    assert [f.property for f in ConsumerProvider().check({}, news).failures] == ["stream"]

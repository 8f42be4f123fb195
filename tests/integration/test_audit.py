"""The deploy audit trail on a real nats-server: every create/update/delete the providers make lands on KUMEO_AUDIT.

The providers are driven the way the Pulumi engine drives them (check, create, update, delete), as in
test_providers_dynamic.py; the records are read back from the server.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import nats
import nats.errors
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, KeyValueConfig, StreamConfig
from nats.js.errors import APIError
from provider_support import on_server

from kumeo_iac.compile import (
    PlatformSettings,
    compile_program,
    derive_passwords,
    render_nats_config,
)
from kumeo_iac.compile._security import DEPLOYER_USER
from kumeo_iac.local._nats_server import NatsServer
from kumeo_iac.spec import NATS, DataProcessor, Program, Ref, WorkflowSpec
from kumeo_providers import (
    ConsumerProvider,
    KeyValueProvider,
    StreamProvider,
    consumer_config_to_inputs,
    ensure_stream,
    key_value_config_to_inputs,
    stream_config_to_inputs,
)
from kumeo_providers._audit import AUDIT_STREAM, AUDIT_SUBJECTS, nats_identity, read_audit

pytestmark = [pytest.mark.nats, pytest.mark.timeout(60)]

SECOND = 1_000_000_000


def checked(provider, inputs: dict[str, Any]) -> dict[str, Any]:
    result = provider.check({}, inputs)
    assert result.failures == [], result.failures
    return result.inputs


def audit(url: str, **connect: Any) -> list[dict[str, Any]]:
    return on_server(url, read_audit, **connect)


def test_stream_create_update_and_delete_are_recorded_with_before_and_after(nats_url):
    provider = StreamProvider()
    config = StreamConfig(name="ORDERS", subjects=["orders.>"], max_age=3600)
    inputs = checked(provider, {"server_url": nats_url, "config": stream_config_to_inputs(config)})
    created = provider.create(inputs)

    records = audit(nats_url)
    assert [(r["resource"], r["action"], r["name"]) for r in records] == [
        ("stream", "create", AUDIT_STREAM),  # the trail records its own creation first
        ("stream", "create", "ORDERS"),
    ]
    create = records[1]
    assert create["before"] is None and create["after"]["subjects"] == ["orders.>"]
    assert create["after"]["max_age"] == 3600 * SECOND
    assert create["actor"] == "pulumi:stream" and create["server"] == nats_url
    assert create["time"].endswith("Z")

    changed = checked(provider, {"server_url": nats_url,
                                 "config": stream_config_to_inputs(config.evolve(max_age=7200))})
    provider.update(created.id, created.outs, changed)
    provider.update(created.id, created.outs, changed)  # unchanged: not a change, not recorded
    provider.delete(created.id, created.outs)

    records = audit(nats_url)
    assert [(r["action"], r["name"]) for r in records[2:]] == [("update", "ORDERS"), ("delete", "ORDERS")]
    update, delete = records[2], records[3]
    assert update["before"] == {"max_age": 3600 * SECOND} and update["after"] == {"max_age": 7200 * SECOND}
    assert delete["before"]["name"] == "ORDERS" and delete["after"] is None


def test_consumer_and_key_value_changes_are_recorded(nats_url):
    on_server(nats_url, lambda js: js.add_stream(name="JOBS", subjects=["jobs.>"]))
    consumers = ConsumerProvider()
    config = ConsumerConfig(durable_name="worker", ack_policy=AckPolicy.EXPLICIT, ack_wait=30, max_deliver=3)
    c_inputs = checked(consumers, {"server_url": nats_url, "stream": "JOBS",
                                   "config": consumer_config_to_inputs(config)})
    c = consumers.create(c_inputs)
    evolved = consumer_config_to_inputs(config.evolve(max_deliver=5))
    consumers.update(c.id, c.outs, checked(consumers, {"server_url": nats_url, "stream": "JOBS", "config": evolved}))
    consumers.delete(c.id, c.outs)

    buckets = KeyValueProvider()
    kv = KeyValueConfig(bucket="joins", history=1, ttl=600)
    k_inputs = checked(buckets, {"server_url": nats_url, "config": key_value_config_to_inputs(kv)})
    k = buckets.create(k_inputs)
    buckets.update(k.id, k.outs, checked(buckets, {"server_url": nats_url,
                                                   "config": key_value_config_to_inputs(kv.evolve(history=3))}))
    buckets.delete(k.id, k.outs)

    records = [r for r in audit(nats_url) if r["name"] != AUDIT_STREAM]
    assert [(r["resource"], r["action"], r["name"]) for r in records] == [
        ("consumer", "create", "JOBS/worker"),
        ("consumer", "update", "JOBS/worker"),
        ("consumer", "delete", "JOBS/worker"),
        ("key-value bucket", "create", "joins"),
        ("key-value bucket", "update", "joins"),
        ("key-value bucket", "delete", "joins"),
    ]
    assert records[1]["before"] == {"max_deliver": 3} and records[1]["after"] == {"max_deliver": 5}
    assert records[4]["before"]["history"] == 1 and records[4]["after"]["history"] == 3


def test_the_audit_stream_keeps_records_and_refuses_deletes(nats_url):
    provider = StreamProvider()
    inputs = checked(provider, {"server_url": nats_url,
                                "config": stream_config_to_inputs(StreamConfig(name="A", subjects=["a"]))})
    provider.create(inputs)

    async def inspect(js):
        info = await js.stream_info(AUDIT_STREAM)
        assert info.config.subjects == [AUDIT_SUBJECTS]  # deploys, the dashboard and review APIs
        assert info.config.deny_delete is True and info.config.deny_purge is True
        with pytest.raises(APIError):
            await js.delete_msg(AUDIT_STREAM, 1)
        with pytest.raises(APIError):
            await js.purge_stream(AUDIT_STREAM)
        return info.state.messages

    assert on_server(nats_url, inspect) == 2


def test_outside_a_provider_nothing_is_recorded(nats_url):
    """The worker and `kumeo run` use the same ensure functions; they make no audit records (no auditor active)."""
    on_server(nats_url, lambda js: ensure_stream(js, StreamConfig(name="LOCAL", subjects=["local"])))
    assert audit(nats_url) == []


def test_the_deployer_user_writes_the_audit_trail_on_a_secured_server(tmp_path, monkeypatch):
    """With the generated server config, the deployer may write audit records but not delete the audit stream."""
    spec = WorkflowSpec(name="Aud", source=NATS("aud.in"), agents=[DataProcessor(id="a", input=Ref(path=("source",)))])
    plan = compile_program(Program(workflows=[spec]), settings=PlatformSettings(nats_auth=True))
    passwords = derive_passwords(plan, "audit-seed-0123456789abcdef")
    (tmp_path / "nats.conf").write_text(render_nats_config(plan, passwords, store_dir=None))
    monkeypatch.setenv("JETSTREAM_KEY", "audit-test-key-0123456789abcdef")
    with NatsServer(config_file=tmp_path / "nats.conf") as server:
        provider = StreamProvider()
        creds = {"user": DEPLOYER_USER, "password": passwords[DEPLOYER_USER]}
        stream = plan.workflows[0].streams[0]
        created = provider.create(checked(provider, {"server_url": server.url, "config": stream.config, **creds}))
        assert created.id

        async def delete_audit(js):
            with pytest.raises((TimeoutError, nats.errors.Error)):  # refused: no reply
                await js._nc.jetstream(timeout=1).delete_stream(AUDIT_STREAM)
            return (await js.stream_info(AUDIT_STREAM)).state.messages

        assert on_server(server.url, delete_audit, **creds) == 2


# -- who made the change -------------------------------------------------------------------------------------------


def _who_env(monkeypatch, **values: str) -> None:
    for name in ("PULUMI_PROJECT", "PULUMI_STACK", "PULUMI_ORGANIZATION", "LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_records_name_the_nats_user_and_the_pulumi_stack_and_user_without_touching_identity(tmp_path, monkeypatch):
    """On a secured server, every record names the deployer's NATS user and who deployed which stack; none of it is
    an input or output of the resource, so a deploy by someone else is no diff."""
    spec = WorkflowSpec(name="Who", source=NATS("who.in"), agents=[DataProcessor(id="a", input=Ref(path=("source",)))])
    plan = compile_program(Program(workflows=[spec]), settings=PlatformSettings(nats_auth=True))
    passwords = derive_passwords(plan, "audit-seed-0123456789abcdef")
    reader = {"user": "auditor", "password": "auditor-password-0123456789"}
    (tmp_path / "nats.conf").write_text(render_nats_config(
        plan, passwords, store_dir=None, extra_users=[{**reader, "permissions": {
            "publish": {"allow": [">"]}, "subscribe": {"allow": [">"]}}}]))
    monkeypatch.setenv("JETSTREAM_KEY", "audit-test-key-0123456789abcdef")
    _who_env(monkeypatch, PULUMI_PROJECT="fraud", PULUMI_STACK="prod", PULUMI_ORGANIZATION="acme", LOGNAME="alice")
    with NatsServer(config_file=tmp_path / "nats.conf") as server:
        provider = StreamProvider()
        creds = {"user": DEPLOYER_USER, "password": passwords[DEPLOYER_USER]}
        stream = plan.workflows[0].streams[0]
        inputs = checked(provider, {"server_url": server.url, "config": stream.config, **creds})
        created = provider.create(inputs)
        assert not any("who" in key or key in ("project", "stack") for key in created.outs)

        _who_env(monkeypatch, PULUMI_PROJECT="fraud", PULUMI_STACK="prod", LOGNAME="bob")  # another deployer
        assert provider.diff(created.id, created.outs, inputs).changes is False
        changed = checked(provider, {"server_url": server.url, **creds,
                                     "config": {**stream.config, "max_age": 3600 * SECOND}})
        provider.update(created.id, created.outs, changed)
        _who_env(monkeypatch, PULUMI_STACK="prod", LOGNAME="carol")  # a destroy runs no program
        provider.delete(created.id, created.outs)

        records = audit(server.url, **reader)
    assert [(r["action"], r["name"]) for r in records] == [
        ("create", AUDIT_STREAM), ("create", stream.name), ("update", stream.name), ("delete", stream.name)]
    nats_user = {"user": DEPLOYER_USER, "auth": "password"}
    assert records[0]["who"] == records[1]["who"] == {
        "nats": nats_user, "pulumi": {"project": "fraud", "stack": "prod", "organization": "acme", "user": "alice"}}
    assert records[2]["who"] == {
        "nats": nats_user, "pulumi": {"project": "fraud", "stack": "prod", "organization": None, "user": "bob"}}
    # Without PULUMI_PROJECT the project is the Pulumi.yaml of the working directory (where the engine starts
    # providers): this repository's own.
    assert records[3]["who"]["pulumi"] == {"project": "kumeo-fraud-detection", "stack": "prod",
                                           "organization": None, "user": "carol"}
    assert records[3]["who"]["nats"] == nats_user
    assert all(passwords[DEPLOYER_USER] not in json.dumps(r) for r in records)


def test_under_pulumi_mocks_records_name_the_programs_project_and_stack(nats_url, monkeypatch):
    """Where the provider runs inside the program's process (mocks, an inline program), the SDK knows the stack."""
    from kumeo_iac.testing import mocked_engine

    _who_env(monkeypatch, LOGNAME="dana")
    provider = StreamProvider()
    inputs = checked(provider, {"server_url": nats_url,
                                "config": stream_config_to_inputs(StreamConfig(name="MOCKED", subjects=["mocked"]))})
    with mocked_engine(project="claims", stack="staging"):
        provider.create(inputs)
    (record,) = [r for r in audit(nats_url) if r["name"] == "MOCKED"]
    assert record["who"] == {"nats": {"user": "anonymous", "auth": "none"},
                             "pulumi": {"project": "claims", "stack": "staging", "organization": None,
                                        "user": "dana"}}


def test_the_nats_identity_comes_from_the_connection_never_its_secrets(tmp_path):
    claims = {"jti": "X", "name": "ci-deployer", "sub": "UABC", "nats": {"type": "user"}}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    creds = tmp_path / "deployer.creds"
    creds.write_text(f"-----BEGIN NATS USER JWT-----\neyJhbGciOiJlZDI1NTE5In0.{payload}.c2ln\n"
                     "------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\nSUAXXXX\n"
                     "------END USER NKEY SEED------\n")
    assert nats_identity({"server_url": "nats://n:4222", "creds_file": str(creds)}) == {
        "user": "ci-deployer", "auth": "creds"}
    assert nats_identity({"server_url": "nats://deployer:s3cret@n:4222"}) == {"user": "deployer", "auth": "password"}
    assert nats_identity({"server_url": "nats://n:4222", "token": "t0k"}) == {"user": "token", "auth": "token"}
    assert nats_identity({"server_url": "nats://t0k@n:4222"}) == {"user": "token", "auth": "token"}
    assert nats_identity({"server_url": "nats://n:4222"}) == {"user": "anonymous", "auth": "none"}
    (tmp_path / "empty.creds").write_text("no jwt here")
    assert nats_identity({"server_url": "nats://n", "creds_file": str(tmp_path / "empty.creds")})["user"] == (
        "unknown (no user JWT in empty.creds)")

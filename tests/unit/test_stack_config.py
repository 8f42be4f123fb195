"""The ``kumeo:`` stack config: one declaration, checked in every program, written into Pulumi.yaml and the docs.

Programs run under Pulumi mocks (``kumeo_iac.testing.pulumi_mocks`` stands in for the engine); config is set the way
the engine hands it over, with ``pulumi.runtime.set_all_config`` (and ``PULUMI_CONFIG`` for a project run).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pulumi
import pytest

from kumeo_iac.components import _config
from kumeo_iac.components._config import (
    CONFIG_KEYS,
    SECRET_CONFIG_KEYS,
    StackConfig,
    StackConfigError,
    check_config_pairs,
    check_stack_config,
    read_stack_config,
)
from kumeo_iac.errors import KumeoDeployError, KumeoError
from kumeo_iac.testing import await_output

ROOT = Path(__file__).resolve().parents[2]

TINY = """\
workflow Tiny {
  source: NATS("tiny.in")
  target: NATS("tiny.out")
  agents: [ DataProcessor(id: "clean", input: source, config: { required_fields: ["id"] }) ]
}
"""


def read(mocks, config: dict[str, Any], secret_keys: list[str] | None = None) -> StackConfig:
    """read_stack_config() inside a program run under mocks, as the Workflow component calls it."""
    pulumi.runtime.set_all_config(config, secret_keys or [])
    read: list[StackConfig] = []
    mocks.run(lambda: read.append(read_stack_config()))
    return read[0]


def failure(mocks, config: dict[str, Any]) -> StackConfigError:
    pulumi.runtime.set_all_config(config, [])
    with pytest.raises(StackConfigError) as info:
        mocks.run(read_stack_config)
    return info.value


# -- the declaration ------------------------------------------------------------------------------------------


def test_every_key_is_declared_once_with_a_type_and_a_doc():
    names = [k.name for k in CONFIG_KEYS]
    assert len(names) == len(set(names))
    for key in CONFIG_KEYS:
        assert key.type in ("string", "boolean", "object") and key.doc.strip(), key
        assert key.default is not None or key.default_doc, f"{key.key} says nothing about its default"
        assert key.default is None or key.type == "boolean", key


def test_the_issue_s_keys_are_all_declared():
    expected = {
        "namespace", "natsUrl", "jetstreamUrl", "imageRegistry", "keda", "createNamespace", "manageJetStream",
        "buildImages", "pushImages", "natsToken", "natsAuthSeed", "natsTlsSecret", "openaiApiKey",
        "anthropicApiKey", "ollamaApiKey", "huggingfaceToken", "secrets", "retainStreams", "allowStreamReplacement",
        "adoptStreams", "awaitKubernetes",
    }
    assert {k.name for k in CONFIG_KEYS} == expected
    secret = {k.name for k in CONFIG_KEYS if k.secret}
    assert secret == {"natsToken", "natsAuthSeed", "openaiApiKey", "anthropicApiKey", "ollamaApiKey",
                      "huggingfaceToken", "secrets"}
    assert SECRET_CONFIG_KEYS == {"openaiApiKey": "OPENAI_API_KEY", "anthropicApiKey": "ANTHROPIC_API_KEY",
                                  "ollamaApiKey": "OLLAMA_API_KEY", "huggingfaceToken": "HF_TOKEN"}


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_stack_config_has_a_field_per_key_named_after_it():
    fields = {f.name: f for f in dataclasses.fields(StackConfig)}
    declared = {k.field: k for k in CONFIG_KEYS if k.field}
    assert set(fields) == set(declared)
    assert {k.name for k in CONFIG_KEYS if not k.field} == set(SECRET_CONFIG_KEYS)  # they fill `secrets`
    for field, key in declared.items():
        # manageJetStream keeps the field the component has always read (JetStream is one word there).
        assert field == snake(key.name).replace("jet_stream", "jetstream"), key
        default = fields[field].default
        assert default is None or default is dataclasses.MISSING or default == key.default, field


def test_the_new_keys_hold_their_defaults_and_the_older_ones_none_when_unset(pulumi_mocks):
    config = read(pulumi_mocks, {})
    assert (config.retain_streams, config.allow_stream_replacement, config.adopt_streams,
            config.await_kubernetes) == (False, False, False, True)
    assert config.keda is None and config.manage_jetstream is None and config.namespace is None
    assert config.secrets == {}


def test_every_key_is_read_into_its_field(pulumi_mocks):
    config = read(pulumi_mocks, {
        "kumeo:namespace": "prod", "kumeo:natsUrl": "nats://nats.bus:4222", "kumeo:jetstreamUrl": "localhost:4222",
        "kumeo:imageRegistry": "cr.example.org/kumeo", "kumeo:keda": "true", "kumeo:createNamespace": "True",
        "kumeo:manageJetStream": "false", "kumeo:buildImages": "true", "kumeo:pushImages": "false",
        "kumeo:natsTlsSecret": "nats-client-tls", "kumeo:retainStreams": "true",
        "kumeo:allowStreamReplacement": "true", "kumeo:adoptStreams": "true", "kumeo:awaitKubernetes": "false",
        "kumeo:natsToken": "t0k", "kumeo:natsAuthSeed": "seed", "kumeo:openaiApiKey": "sk-1",
        "kumeo:secrets": json.dumps({"VENDOR_TOKEN": "v-1", "PORT": 8080}),
    }, ["kumeo:natsToken", "kumeo:natsAuthSeed", "kumeo:openaiApiKey", "kumeo:secrets"])
    assert config.namespace == "prod" and config.nats_url == "nats://nats.bus:4222"
    assert config.jetstream_url == "localhost:4222" and config.image_registry == "cr.example.org/kumeo"
    assert (config.keda, config.create_namespace, config.manage_jetstream) == (True, True, False)
    assert (config.build_images, config.push_images, config.nats_tls_secret) == (True, False, "nats-client-tls")
    assert (config.retain_streams, config.allow_stream_replacement, config.adopt_streams,
            config.await_kubernetes) == (True, True, True, False)
    assert await_output(config.nats_token) == "t0k" and await_output(config.nats_auth_seed) == "seed"
    assert sorted(config.secrets) == ["OPENAI_API_KEY", "PORT", "VENDOR_TOKEN"]
    assert await_output(config.secrets["PORT"]) == "8080"


# -- unknown keys and wrong types ------------------------------------------------------------------------------


def test_an_unknown_key_is_one_line_with_the_closest_known_key(pulumi_mocks):
    error = failure(pulumi_mocks, {"kumeo:natsURL": "nats://nats:4222"})
    assert str(error) == "unknown stack config key kumeo:natsURL; did you mean kumeo:natsUrl?"
    assert isinstance(error, KumeoDeployError) and isinstance(error, KumeoError)
    assert isinstance(error, pulumi.RunError)  # Pulumi reports a RunError by its message, without a traceback


@pytest.mark.parametrize(("key", "suggestion"), [
    ("nmespace", "namespace"), ("retainStream", "retainStreams"), ("KEDA", "keda"),
    ("adopt_streams", "adoptStreams"), ("openAIApiKey", "openaiApiKey"),
])
def test_typos_get_the_key_they_meant(key, suggestion):
    assert check_stack_config({f"kumeo:{key}": "x"}) == [
        f"unknown stack config key kumeo:{key}; did you mean kumeo:{suggestion}?"
    ]


def test_a_key_like_nothing_known_points_at_the_docs():
    (problem,) = check_stack_config({"kumeo:frobnicate": "1"})
    assert problem.startswith("unknown stack config key kumeo:frobnicate;") and "did you mean" not in problem
    assert "docs/deploy.md" in problem


def test_a_secrets_entry_set_without_path_says_how_to_set_it():
    (problem,) = check_stack_config({"kumeo:secrets.VENDOR": "v"})
    assert "pulumi config set --secret --path 'kumeo:secrets.VENDOR'" in problem


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("keda", "yes please", "stack config kumeo:keda must be true or false, not 'yes please'"),
    ("retainStreams", "1", "stack config kumeo:retainStreams must be true or false, not '1'"),
    ("namespace", "Fraud_Prod", "stack config kumeo:namespace must be a Kubernetes namespace name"),
    ("namespace", json.dumps({"name": "x"}), "stack config kumeo:namespace must be a string"),
    ("natsUrl", "http://nats:8222", "stack config kumeo:natsUrl must be a NATS URL"),
    ("jetstreamUrl", "nats://", "stack config kumeo:jetstreamUrl must be a NATS URL"),
    ("imageRegistry", "https://ghcr.io/acme", "stack config kumeo:imageRegistry must be a registry prefix"),
    ("natsTlsSecret", "NATS TLS", "stack config kumeo:natsTlsSecret must be the name of a Kubernetes Secret"),
    ("secrets", '["a"]', "stack config kumeo:secrets must be an object"),
    ("secrets", json.dumps({"1BAD": "x"}), "stack config kumeo:secrets entry '1BAD' is not an environment"),
    ("secrets", json.dumps({"NESTED": {"a": 1}}), "stack config kumeo:secrets entry 'NESTED' must be a string"),
])
def test_wrong_types_are_errors(key, value, expected):
    (problem,) = check_stack_config({f"kumeo:{key}": value})
    assert problem.startswith(expected), problem


def test_secret_values_are_never_shown_in_the_error():
    (problem,) = check_stack_config({"kumeo:secrets": "sk-live-123"})
    assert "sk-live-123" not in problem and "a secret value" in problem


@pytest.mark.parametrize(("key", "value"), [
    ("keda", "true"), ("keda", "False"), ("keda", True), ("natsUrl", "nats://a:4222,nats://b:4222"),
    ("natsUrl", "tls://nats.prod.svc:4222"), ("jetstreamUrl", "127.0.0.1:4222"), ("namespace", "fraud-prod"),
    ("natsToken", "[not json, just a token"), ("openaiApiKey", '{"json": "is opaque"}'),
    ("secrets", {"VENDOR": "v", "PORT": 1}), ("imageRegistry", "ghcr.io/a"),
])
def test_good_values_pass(key, value):
    assert check_stack_config({f"kumeo:{key}": value}) == []


def test_other_namespaces_are_left_alone():
    assert check_stack_config({"kubernetes:context": "kind", "fraud:anything": "x", "pulumi:tags": "{}"}) == []


def test_every_problem_is_reported_one_a_line(pulumi_mocks):
    error = failure(pulumi_mocks, {"kumeo:natsURL": "x", "kumeo:keda": "yes please", "kumeo:namespace": "ok"})
    assert error.problems == [
        "stack config kumeo:keda must be true or false, not 'yes please'",
        "unknown stack config key kumeo:natsURL; did you mean kumeo:natsUrl?",
    ]
    assert str(error).splitlines() == error.problems


def test_keys_handed_over_in_the_environment_are_checked_too(pulumi_mocks, monkeypatch):
    """`pulumi up` on a project passes config to the program in PULUMI_CONFIG; the check sees those keys too."""
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({"kumeo:namespce": "prod"}))
    error = failure(pulumi_mocks, {})
    assert str(error) == "unknown stack config key kumeo:namespce; did you mean kumeo:namespace?"


def test_a_plain_text_secret_gets_a_warning(pulumi_mocks, monkeypatch):
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *a, **k: warnings.append(message))
    read(pulumi_mocks, {"kumeo:openaiApiKey": "sk-1", "kumeo:natsToken": "t"}, ["kumeo:natsToken"])
    assert len(warnings) == 1 and "kumeo:openaiApiKey is stored in plain text" in warnings[0]


def test_config_pairs_are_checked_like_stack_config():
    assert check_config_pairs([("namespace", "prod"), ("kumeo:keda", "true"), ("secrets.VENDOR", "v"),
                               ("kubernetes:context", "kind")]) == []
    assert check_config_pairs([("natsURL", "x")]) == [
        "unknown stack config key kumeo:natsURL; did you mean kumeo:natsUrl?"]
    assert check_config_pairs([("secrets.not-a-name", "v")]) == [
        "stack config kumeo:secrets entry 'not-a-name' is not an environment variable name (letters, digits and '_')"]


# -- in a program ----------------------------------------------------------------------------------------------


def test_a_workflow_fails_its_program_on_an_unknown_key(pulumi_mocks, tmp_path):
    from kumeo_iac.components import Workflow

    path = tmp_path / "tiny.kumeo"
    path.write_text(TINY)
    pulumi.runtime.set_all_config({"kumeo:manageJetStream": "false", "kumeo:retainStream": "true"})
    with pytest.raises(StackConfigError, match=r"kumeo:retainStream; did you mean kumeo:retainStreams\?"):
        pulumi_mocks.run(lambda: Workflow.from_file("tiny", path))
    assert not [r for r in pulumi_mocks.resources if r.type != "pulumi:pulumi:Stack"]


def test_the_inline_program_of_kumeo_up_fails_with_the_same_line(pulumi_mocks, tmp_path):
    from kumeo_iac.components._automation import workflow_program

    path = tmp_path / "tiny.kumeo"
    path.write_text(TINY)
    pulumi.runtime.set_all_config({"kumeo:keda": "yes please"})
    with pytest.raises(pulumi.RunError) as info:
        pulumi_mocks.run(workflow_program(path))
    assert str(info.value) == "stack config kumeo:keda must be true or false, not 'yes please'"


# -- generated from the declaration -----------------------------------------------------------------------------


def test_the_docs_table_is_generated_from_the_declaration_and_up_to_date():
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert _config.docs_with_reference(text) == text, f"docs/deploy.md is out of date: run {_config.REGENERATE}"
    table = text[text.index(_config.DOCS_BEGIN):text.index(_config.DOCS_END)]
    for key in CONFIG_KEYS:
        assert f"| `{key.key}` | {key.type_doc} |" in table


def test_the_docs_check_notices_a_stale_table(tmp_path, monkeypatch):
    stale = tmp_path / "deploy.md"
    stale.write_text(f"# x\n{_config.DOCS_BEGIN}\n| old |\n{_config.DOCS_END}\n")
    monkeypatch.setattr(_config, "DOCS_PATH", stale)
    assert _config.main(["--check"]) == 1
    assert _config.main([]) == 0 and _config.main(["--check"]) == 0
    assert "`kumeo:retainStreams`" in stale.read_text()

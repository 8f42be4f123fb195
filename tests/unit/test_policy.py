"""The policy pack in policy/ run on the resources compile renders, passing and failing.

No Pulumi engine runs here: each test builds pulumi_policy's own ``ResourceValidationArgs`` directly (the argument
bag the engine hands a policy: the resource's type token and its inputs, which for pulumi_kubernetes resources are
the Kubernetes object as written) and calls the policy's ``validate`` with a ``report_violation`` that collects
the messages — the way the analyzer calls it during ``pulumi preview --policy-pack policy/``.
"""

from __future__ import annotations

import ast
import copy
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("pulumi_policy")
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResourceOptions,
    ResourceValidationArgs,
)

from kumeo_iac.compile import PlatformSettings, compile_program
from kumeo_iac.components._kubernetes import type_token

ROOT = Path(__file__).resolve().parents[2]
POLICY_DIR = ROOT / "policy"
sys.path.insert(0, str(POLICY_DIR))
import kumeo_policies as kp  # noqa: E402 - the policy pack is not a package: found through the path set just above

DIGEST = "sha256:" + "ab" * 32
PINNED = {c: f"registry.example.com/kumeo/{c}@{DIGEST}" for c in ("base", "ml", "llm")}


def args_for(obj: dict) -> ResourceValidationArgs:
    """pulumi_policy's argument bag for one rendered object, as the engine would build it."""
    token = type_token(obj)
    name = obj["metadata"]["name"]
    opts = PolicyResourceOptions(protect=False, ignore_changes=[], delete_before_replace=None, aliases=[],
                                 custom_timeouts=PolicyCustomTimeouts(0, 0, 0), additional_secret_outputs=[])
    return ResourceValidationArgs(resource_type=token, props=copy.deepcopy(obj),
                                  urn=f"urn:pulumi:ci::kumeo::{token}::{name}", name=name, opts=opts, provider=None)


def violations(policy, obj: dict) -> list[str]:
    found: list[str] = []
    result = policy.validate(args_for(obj), lambda message, urn=None: found.append(message))
    assert result is None  # synchronous policies
    return found


def example_objects(settings: PlatformSettings | None = None) -> list[dict]:
    """The objects a deployer applies for every example: the Plan's, with the files ConfigMap the deployer adds."""
    from kumeo_iac.lang import parse_file
    from kumeo_iac.manifests import workflow_manifests

    objects = []
    for path in sorted((ROOT / "examples").glob("**/*.kumeo")):
        result = parse_file(path)
        assert result.ok, [d.format() for d in result.diagnostics]
        plan = compile_program(result.program, base_dir=path.parent, settings=settings)
        objects += [o for wf in plan.workflows for o in workflow_manifests(wf, path.parent).objects]
    assert objects
    return objects


def own_plan(deployment: dict) -> str:
    """The pod's own part of the Plan, as its Deployment carries it."""
    from kumeo_iac.compile._kubernetes import PLAN_ENV

    (value,) = [e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
                if e["name"] == PLAN_ENV]
    return value


def of_kind(objects: list[dict], kind: str) -> list[dict]:
    found = [o for o in objects if o["kind"] == kind]
    assert found, kind
    return found


# -- the pack --------------------------------------------------------------------------------------------------


def test_the_pack_directory_is_a_pulumi_python_policy_pack():
    import yaml

    manifest = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    assert manifest["runtime"]["name"] == "python"
    assert "pulumi-policy" in (POLICY_DIR / "requirements.txt").read_text()
    tree = ast.parse((POLICY_DIR / "__main__.py").read_text())
    assert any(isinstance(n, ast.Call) and getattr(n.func, "id", "") == "PolicyPack" for n in ast.walk(tree))
    assert [p.name for p in kp.POLICIES] == [
        "kumeo-images-pinned-by-digest",
        "kumeo-container-resource-limits",
        "kumeo-no-plaintext-secrets-in-configmaps",
        "kumeo-no-plaintext-secrets-in-env",
        "kumeo-replicas-within-scaling-bounds",
    ]
    assert all(p.enforcement_level == EnforcementLevel.MANDATORY for p in kp.POLICIES)


# -- images pinned by digest -----------------------------------------------------------------------------------


def test_images_pinned_by_digest_passes_when_compile_is_given_digests():
    for deployment in of_kind(example_objects(PlatformSettings(runtime_images=PINNED)), "Deployment"):
        assert violations(kp.images_pinned_by_digest, deployment) == []


def test_images_pinned_by_digest_fails_on_compiles_default_tags():
    deployment = of_kind(example_objects(), "Deployment")[0]
    (message,) = violations(kp.images_pinned_by_digest, deployment)
    assert "not pinned by digest" in message and ":0.1.0" in message


def test_a_short_or_malformed_digest_is_not_a_pin():
    deployment = copy.deepcopy(of_kind(example_objects(PlatformSettings(runtime_images=PINNED)), "Deployment")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "x/y@sha256:abc"
    assert violations(kp.images_pinned_by_digest, deployment)


def test_non_workloads_are_not_checked_for_images():
    assert violations(kp.images_pinned_by_digest, of_kind(example_objects(), "Service")[0]) == []


# -- resource limits -------------------------------------------------------------------------------------------


def test_every_compiled_container_has_limits():
    for deployment in of_kind(example_objects(), "Deployment"):
        assert violations(kp.container_resource_limits, deployment) == []


def test_a_container_without_memory_limit_fails():
    deployment = copy.deepcopy(of_kind(example_objects(), "Deployment")[0])
    del deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
    (message,) = violations(kp.container_resource_limits, deployment)
    assert "limits.memory" in message
    deployment["spec"]["template"]["spec"]["containers"][0].pop("resources")
    assert "limits.cpu and limits.memory" in violations(kp.container_resource_limits, deployment)[0]


# -- no plaintext secrets in ConfigMaps --------------------------------------------------------------------------


def test_compiled_config_maps_hold_no_secrets():
    config_maps = of_kind(example_objects(), "ConfigMap")
    names = {c["metadata"]["name"] for c in config_maps}
    assert any(n.endswith("-files") for n in names) and any(n.endswith("-grafana-dashboard") for n in names)
    for config_map in config_maps:
        assert violations(kp.no_plaintext_secrets_in_config_maps, config_map) == []


@pytest.mark.parametrize("data", [
    {"OPENAI_API_KEY": "abc123"},
    {"db_password": "hunter2"},
    {"settings.json": json.dumps({"llm": {"api_key": "literal-key"}})},
    {"app.env": "MODE=fast\nAUTH_TOKEN=xyz\n"},
    {"note": "call with sk-" + "a" * 40},
    {"url": "nats://agent:s3cret@nats:4222"},
])
def test_config_maps_with_credentials_fail(data):
    config_map = copy.deepcopy(of_kind(example_objects(), "ConfigMap")[0])
    config_map["data"] = data
    (message,) = violations(kp.no_plaintext_secrets_in_config_maps, config_map)
    assert "Secret" in message


def test_a_secret_smuggled_into_a_plan_json_in_a_config_map_is_found():
    objects = example_objects()
    config_map = copy.deepcopy(of_kind(objects, "ConfigMap")[0])
    plan = json.loads(own_plan(of_kind(objects, "Deployment")[0]))
    config_map["data"] = {"plan.json": json.dumps(plan)}
    assert violations(kp.no_plaintext_secrets_in_config_maps, config_map) == []  # an agent's Plan is clean
    plan["workflows"][0]["agents"][0]["settings"]["apiKey"] = "live-key-123"
    config_map["data"] = {"plan.json": json.dumps(plan)}
    (message,) = violations(kp.no_plaintext_secrets_in_config_maps, config_map)
    assert "apiKey" in message


def test_a_literal_credential_in_a_pods_environment_is_found():
    deployment = copy.deepcopy(of_kind(example_objects(), "Deployment")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "OPENAI_API_KEY",
                                                                           "value": "plain-text"})
    assert any("OPENAI_API_KEY holds a literal credential" in m
               for m in violations(kp.no_plaintext_secrets_in_env, deployment))
    clean = of_kind(example_objects(), "Deployment")[0]
    assert violations(kp.no_plaintext_secrets_in_env, clean) == []


def test_a_secret_smuggled_into_a_pods_own_plan_is_found():
    deployment = copy.deepcopy(of_kind(example_objects(), "Deployment")[0])
    plan = json.loads(own_plan(deployment))
    plan["workflows"][0]["agents"][0]["settings"]["apiKey"] = "live-key-123"
    for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
        if e["name"] == "KUMEO_PLAN_JSON":
            e["value"] = json.dumps(plan)
    found = [m for p in kp.POLICIES for m in violations(p, deployment)]
    assert any("apiKey" in m for m in found), found


@pytest.mark.parametrize("data", [
    {"api_key": "${env.OPENAI_API_KEY}"},
    {"max_tokens": "64", "token_budget_note": "fine"},
    {"password": ""},
])
def test_placeholders_and_harmless_names_pass(data):
    config_map = copy.deepcopy(of_kind(example_objects(), "ConfigMap")[0])
    config_map["data"] = data
    assert violations(kp.no_plaintext_secrets_in_config_maps, config_map) == []


# -- replicas within scaling bounds ------------------------------------------------------------------------------


def test_compiled_replicas_and_autoscalers_are_within_the_bounds_compile_annotates():
    objects = example_objects()
    kinds = {"Deployment", "HorizontalPodAutoscaler"}
    checked = [o for o in objects if o["kind"] in kinds]
    for obj in checked:
        assert kp.MIN_REPLICAS_ANNOTATION in obj["metadata"]["annotations"]
        assert violations(kp.replicas_within_scaling_bounds, obj) == []
    keda = [o for o in example_objects(PlatformSettings(keda_enabled=True)) if o["kind"] == "ScaledObject"]
    assert keda and all(violations(kp.replicas_within_scaling_bounds, o) == [] for o in keda)


def test_replicas_above_the_bound_fail_and_mock_floats_are_read_as_ints():
    deployment = copy.deepcopy(of_kind(example_objects(), "Deployment")[0])
    high = int(deployment["metadata"]["annotations"][kp.MAX_REPLICAS_ANNOTATION])
    deployment["spec"]["replicas"] = float(high)  # what the engine and mocks hand over
    assert violations(kp.replicas_within_scaling_bounds, deployment) == []
    deployment["spec"]["replicas"] = high + 1
    (message,) = violations(kp.replicas_within_scaling_bounds, deployment)
    assert "outside the workflow's scaling bounds" in message
    hpa = copy.deepcopy(of_kind(example_objects(), "HorizontalPodAutoscaler")[0])
    hpa["spec"]["maxReplicas"] = high + 5
    assert violations(kp.replicas_within_scaling_bounds, hpa)


def test_objects_without_kumeo_bounds_are_not_judged():
    deployment = copy.deepcopy(of_kind(example_objects(), "Deployment")[0])
    deployment["metadata"].pop("annotations")
    deployment["spec"]["replicas"] = 1000
    assert violations(kp.replicas_within_scaling_bounds, deployment) == []

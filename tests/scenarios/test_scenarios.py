"""Scenario tests: each directory holds a program and the Plan it must compile to, byte for byte.

A scenario directory contains ``workflow.kumeo`` (parsed with kumeo_iac.lang) or ``program.py`` (defining
``PROGRAM``), optionally ``settings.json`` (keyword arguments of PlatformSettings), and ``expected_plan.json``.
After an intended change to compile, regenerate the expectations and review the diff:

    KUMEO_UPDATE_SCENARIOS=1 .venv/bin/pytest tests/scenarios -q

The module also renders every scenario and every example (examples/**/*.kumeo; for those, the objects a deployer
applies: ``kumeo_iac.manifests.workflow_manifests`` with the files ConfigMap and checksums) and validates each
Kubernetes object against the Kubernetes 1.30 schema with kubernetes-validate in strict mode; KEDA ScaledObjects (a
custom resource kubernetes-validate has no schema for) are validated against the small strict schema in
``_schemas/``.
"""

from __future__ import annotations

import difflib
import json
import os
import runpy
from pathlib import Path

import pytest

from kumeo_iac.compile import Plan, PlatformSettings, compile_program
from kumeo_iac.spec import Program

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
SCENARIOS = sorted(p for p in HERE.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
UPDATE = os.environ.get("KUMEO_UPDATE_SCENARIOS") == "1"
KUBERNETES_VERSION = "1.30"


def load(directory: Path) -> tuple[Program, PlatformSettings | None]:
    settings_file = directory / "settings.json"
    settings = PlatformSettings(**json.loads(settings_file.read_text())) if settings_file.exists() else None
    if (directory / "workflow.kumeo").exists():
        lang = pytest.importorskip("kumeo_iac.lang")
        result = lang.parse_file(directory / "workflow.kumeo")
        assert result.ok, [d.format() for d in result.diagnostics]
        return result.program, settings
    return runpy.run_path(str(directory / "program.py"))["PROGRAM"], settings


def compile_scenario(directory: Path) -> Plan:
    program, settings = load(directory)
    return compile_program(program, base_dir=directory, settings=settings)


@pytest.mark.parametrize("directory", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_scenario_plan_matches_expected(directory: Path) -> None:
    actual = compile_scenario(directory).to_json()
    expected_file = directory / "expected_plan.json"
    if UPDATE or not expected_file.exists():
        expected_file.write_text(actual, encoding="utf-8")
        if not UPDATE:
            pytest.fail(f"{expected_file} did not exist; written now — review it and commit it")
    expected = expected_file.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(list(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                                 "expected_plan.json", "compiled"))[:80])
        pytest.fail(f"scenario {directory.name} compiles differently (KUMEO_UPDATE_SCENARIOS=1 regenerates):\n{diff}")


@pytest.mark.parametrize("directory", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_scenario_passes_check(directory: Path) -> None:
    """A scenario is a program a user could deploy: `kumeo check` finds no error in it (render, run and up refuse
    one that has any), so check and compile agree on it. Missing files are warnings: scenarios name files they do
    not ship."""
    from kumeo_iac.validate import validate

    program, _ = load(directory)
    errors = [d.format() for d in validate(program, base_dir=directory) if d.is_error]
    assert errors == []


@pytest.mark.parametrize("directory", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_scenario_plan_round_trips(directory: Path) -> None:
    plan = compile_scenario(directory)
    assert Plan.from_json(plan.to_json()) == plan


def _example_plans() -> list[tuple[str, Plan]]:
    return [(label, plan) for label, plan, _ in _plans_with_files()]


def _plans_with_files() -> list[tuple[str, Plan, Path | None]]:
    """Every scenario's and example's Plan, with the folder holding the files its agents read (examples only:
    scenarios name files they do not ship)."""
    plans: list[tuple[str, Plan, Path | None]] = [(f"scenario:{d.name}", compile_scenario(d), None)
                                                  for d in SCENARIOS]
    examples = sorted((ROOT / "examples").glob("**/*.kumeo"))
    if examples:
        from kumeo_iac.lang import parse_file

        for path in examples:
            result = parse_file(path)
            assert result.ok, [d.format() for d in result.diagnostics]
            plans.append((f"example:{path.relative_to(ROOT)}", compile_program(result.program,
                                                                               base_dir=path.parent), path.parent))
    return plans


def _validate_custom(obj: dict) -> None:
    import jsonschema

    assert obj["kind"] == "ScaledObject", f"no schema for custom kind {obj['kind']}"
    schema = json.loads((HERE / "_schemas" / "keda-scaledobject.json").read_text())
    jsonschema.validate(obj, schema)


def test_every_kubernetes_object_is_valid_for_kubernetes_1_30() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    import yaml

    from kumeo_iac.manifests import workflow_manifests

    checked = files = 0
    for label, plan, base_dir in _plans_with_files():
        for wf in plan.workflows:
            objects = wf.kubernetes if base_dir is None else workflow_manifests(wf, base_dir).objects
            files += sum(o["metadata"]["name"] == f"{wf.slug}-files" for o in objects)
            for obj in objects:
                # validate what render writes (YAML), not just the dicts
                data = yaml.safe_load(yaml.safe_dump(obj, sort_keys=True))
                if data["apiVersion"].startswith("keda.sh/"):
                    _validate_custom(data)
                else:
                    try:
                        kubernetes_validate.validate(data, KUBERNETES_VERSION, strict=True)
                    except kubernetes_validate.ValidationError as exc:
                        pytest.fail(f"{label} {data['kind']}/{data['metadata']['name']}: {exc.message} at "
                                    f"{'/'.join(str(p) for p in exc.absolute_path)}")
                checked += 1
    assert checked > 0 and files > 0  # the files ConfigMap (binaryData) is validated too


def test_keda_scenario_has_scaled_objects_validated_by_our_schema() -> None:
    plan = compile_scenario(HERE / "keda")
    kinds = [o["kind"] for o in plan.workflows[0].kubernetes]
    assert "ScaledObject" in kinds and "HorizontalPodAutoscaler" not in kinds


def test_every_nats_config_round_trips_through_nats_py() -> None:
    from nats.js.api import ConsumerConfig, KeyValueConfig, StreamConfig

    for _, plan in _example_plans():
        for wf in plan.workflows:
            for stream in wf.streams:
                parsed = StreamConfig.from_response(json.loads(json.dumps(stream.config)))
                assert json.loads(json.dumps(parsed.as_dict())) == stream.config
            for consumer in wf.consumers:
                parsed = ConsumerConfig.from_response(json.loads(json.dumps(consumer.config)))
                assert json.loads(json.dumps(parsed.as_dict())) == consumer.config
            for kv in wf.key_values:
                assert KeyValueConfig(**{**kv.config, "ttl": kv.config["ttl"] / 1e9}).as_dict()["ttl"] == \
                    kv.config["ttl"]


def _without_lines(value: object) -> object:
    if isinstance(value, dict):
        return {k: _without_lines(v) for k, v in value.items() if k != "line"}
    if isinstance(value, list):
        return [_without_lines(v) for v in value]
    return value


def test_kumeo_text_and_python_dsl_compile_to_the_same_plan() -> None:
    pytest.importorskip("kumeo_iac.lang")
    from_text = json.loads(compile_scenario(HERE / "seed_fraud_detection_kumeo").to_json())
    from_python = json.loads(compile_scenario(HERE / "seed_fraud_detection").to_json())
    # only the Plan's source lines differ (Python has none); no pod's own Plan holds a line of an agent, so the
    # Kubernetes objects are the same too
    assert _without_lines(from_text) == _without_lines(from_python)
    assert from_text["workflows"][0]["kubernetes"] == from_python["workflows"][0]["kubernetes"]

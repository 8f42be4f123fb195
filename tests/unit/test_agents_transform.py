"""The transforming agent kinds as plain functions: DataProcessor, DataNormalizer, MissingValueHandler."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from agent_helpers import make, one, started

from kumeo_iac.errors import KumeoRuntimeError, KumeoSyntaxError
from kumeo_iac.runtime._agent import EventRejected
from kumeo_iac.runtime.agents import WORKFLOW_CONFIG_KEY

# -- DataProcessor -------------------------------------------------------------------------------------------------


def processor(config: dict[str, Any], workflow_config: dict[str, Any] | None = None) -> dict[str, Any]:
    settings: dict[str, Any] = {"config": config}
    if workflow_config is not None:
        settings[WORKFLOW_CONFIG_KEY] = workflow_config
    return settings


async def test_processor_required_fields_pass_and_reject() -> None:
    agent = await started("DataProcessor", processor({"required_fields": ["tx_id", "amount", "hour"]}))
    assert await one(agent, {"tx_id": "t1", "amount": 5, "hour": 0}) == {"tx_id": "t1", "amount": 5, "hour": 0}
    with pytest.raises(EventRejected, match=r"DataProcessor 'a': missing required field\(s\): amount, hour$"):
        await one(agent, {"tx_id": "t1", "hour": None})


async def test_processor_rejects_non_object_payload() -> None:
    agent = await started("DataProcessor", processor({}))
    with pytest.raises(EventRejected, match="expected a JSON object, got a list"):
        await one(agent, [1, 2])


async def test_processor_does_not_mutate_the_event() -> None:
    agent = await started("DataProcessor", processor({"rename": {"a": "b"}}))
    payload = {"a": 1}
    assert await one(agent, payload) == {"b": 1}
    assert payload == {"a": 1}


async def test_processor_schema_inline() -> None:
    schema = {
        "type": "object",
        "required": ["amount"],
        "properties": {
            "amount": {"type": "number", "minimum": 0},
            "items": {"type": "array", "items": {"type": "string"}},
        },
    }
    agent = await started("DataProcessor", processor({"schema": schema}))
    assert await one(agent, {"amount": 3}) == {"amount": 3}
    with pytest.raises(EventRejected, match=r"schema violation at \$\.amount: -1 is less than the minimum of 0"):
        await one(agent, {"amount": -1})
    with pytest.raises(EventRejected, match=r"schema violation at \$\.items\[1\]: 2 is not of type 'string'"):
        await one(agent, {"amount": 1, "items": ["x", 2]})
    with pytest.raises(EventRejected, match=r"schema violation at \$: 'amount' is a required property"):
        await one(agent, {})


async def test_processor_schema_file_and_file_reference(tmp_path: Path) -> None:
    (tmp_path / "tx.json").write_text(json.dumps({"type": "object", "required": ["id"]}))
    for schema in ("tx.json", {"file": "tx.json"}):
        agent = await started("DataProcessor", processor({"schema": schema}), base_dir=tmp_path)
        assert await one(agent, {"id": 1}) == {"id": 1}
        with pytest.raises(EventRejected, match="'id' is a required property"):
            await one(agent, {})


async def test_processor_invalid_schema_fails_at_start() -> None:
    with pytest.raises(KumeoRuntimeError, match="invalid JSON schema"):
        await started("DataProcessor", processor({"schema": {"type": "nonsense"}}))


async def test_processor_select_rename_defaults() -> None:
    agent = await started(
        "DataProcessor",
        processor(
            {"defaults": {"currency": "EUR", "n": 0}, "rename": {"amt": "amount"}, "select": ["amount", "currency"]}
        ),
    )
    assert await one(agent, {"amt": 10, "currency": None, "junk": 1}) == {"amount": 10, "currency": "EUR"}
    assert await one(agent, {"amt": 10, "currency": "USD"}) == {"amount": 10, "currency": "USD"}


async def test_processor_defaults_satisfy_required_fields() -> None:
    config = {"defaults": {"currency": "EUR"}, "required_fields": ["currency"]}
    agent = await started("DataProcessor", processor(config))
    assert await one(agent, {}) == {"currency": "EUR"}


async def test_processor_features_compute_with_workflow_config() -> None:
    config = {
        "required_fields": ["tx_id", "amount", "hour"],
        "features": ["amount", "hour", "is_high_value: amount > config.high_value", "night: hour < 6 || hour >= 23"],
    }
    agent = await started("DataProcessor", processor(config, {"high_value": 1000}))
    assert await one(agent, {"tx_id": "t", "amount": 1500, "hour": 23, "merchant_category": 4}) == {
        "tx_id": "t", "amount": 1500, "hour": 23, "merchant_category": 4, "is_high_value": True, "night": True,
    }
    assert await one(agent, {"tx_id": "t", "amount": 10, "hour": 12}) == {
        "tx_id": "t", "amount": 10, "hour": 12, "is_high_value": False, "night": False,
    }


async def test_processor_features_missing_plain_field_rejects() -> None:
    agent = await started("DataProcessor", processor({"features": ["amount"]}))
    with pytest.raises(EventRejected, match="missing feature field 'amount'"):
        await one(agent, {})


async def test_processor_computed_mapping_sees_earlier_results_and_select_keeps_features() -> None:
    agent = await started(
        "DataProcessor",
        processor({"computed": {"double": "amount * 2", "quad": "double * 2"}, "select": ["id"]}),
    )
    assert await one(agent, {"id": 1, "amount": 3, "x": 0}) == {"id": 1, "double": 6, "quad": 12}


async def test_processor_computed_evaluation_error_rejects() -> None:
    agent = await started("DataProcessor", processor({"computed": ["total: amount + 1"]}))
    with pytest.raises(EventRejected, match="feature 'total': cannot add 'x' and 1"):
        await one(agent, {"amount": "x"})


async def test_processor_text_steps_on_all_strings_and_on_fields() -> None:
    agent = await started(
        "DataProcessor", processor({"steps": ["trim", "lowercase", "remove_special_chars", "collapse_whitespace"]})
    )
    assert await one(agent, {"a": "  Hello,   WORLD!! ", "b": 3, "c": "Ça  va?"}) == {
        "a": "hello world", "b": 3, "c": "ça va",
    }
    agent = await started("DataProcessor", processor({"steps": ["uppercase"], "fields": ["code"]}))
    assert await one(agent, {"code": "ab", "name": "x"}) == {"code": "AB", "name": "x"}


async def test_processor_unknown_step_fails_at_start() -> None:
    with pytest.raises(KumeoRuntimeError, match="unknown text step 'tokenize'"):
        await started("DataProcessor", processor({"steps": ["tokenize"]}))


async def test_processor_bad_feature_expression_fails_at_start() -> None:
    with pytest.raises(KumeoRuntimeError, match=r"DataProcessor 'a': features 'x': invalid expression `amount >`"):
        await started("DataProcessor", processor({"features": ["x: amount >"]}))


async def test_processor_config_from_json_file(tmp_path: Path) -> None:
    (tmp_path / "proc.json").write_text(json.dumps({"required_fields": ["id"]}))
    agent = await started("DataProcessor", {"config": {"file": "proc.json"}}, base_dir=tmp_path)
    with pytest.raises(EventRejected, match="missing required field"):
        await one(agent, {})


async def test_processor_process_before_start_is_an_error() -> None:
    agent = make("DataProcessor", processor({}))
    with pytest.raises(KumeoRuntimeError, match="before start"):
        await one(agent, {})


# -- DataNormalizer --------------------------------------------------------------------------------------------------


async def test_normalizer_min_max_replaces() -> None:
    agent = await started("DataNormalizer", {"config": {"method": "min_max", "fields": {"amount": [0, 50000]}}})
    assert await one(agent, {"amount": 12500, "x": 1}) == {"amount": 0.25, "x": 1}
    assert await one(agent, {"amount": 60000}) == {"amount": 1.2}
    assert await one(agent, {"x": 1}) == {"x": 1}  # absent fields are left alone
    assert await one(agent, {"amount": None}) == {"amount": None}


async def test_normalizer_min_max_keep_original_and_clip() -> None:
    agent = await started(
        "DataNormalizer",
        {"config": {
            "method": "min_max", "fields": {"amount": {"min": 0, "max": 100}}, "keep_original": True, "clip": True,
        }},
    )
    assert await one(agent, {"amount": 150}) == {"amount": 150, "amount_normalized": 1.0}
    assert await one(agent, {"amount": -5}) == {"amount": -5, "amount_normalized": 0.0}
    assert await one(agent, {"amount": 40}) == {"amount": 40, "amount_normalized": 0.4}


async def test_normalizer_z_score_with_clip() -> None:
    agent = await started("DataNormalizer", {"config": {"method": "z_score", "fields": {"h": [12, 4]}, "clip": 1.5}})
    assert await one(agent, {"h": 16}) == {"h": 1.0}
    assert await one(agent, {"h": 0}) == {"h": -1.5}
    agent = await started("DataNormalizer", {"config": {"method": "zscore", "fields": {"h": {"mean": 10, "std": 2}}}})
    assert await one(agent, {"h": 4}) == {"h": -3.0}


async def test_normalizer_non_numeric_rejects() -> None:
    agent = await started("DataNormalizer", {"config": {"fields": {"amount": [0, 10]}}})
    for bad in ("12", True):
        with pytest.raises(EventRejected, match="field 'amount' must be a number to normalize"):
            await one(agent, {"amount": bad})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"method": "log", "fields": {"a": [0, 1]}}, "unknown method 'log'"),
        ({"method": "min_max"}, "'fields' must map each field"),
        ({"fields": {"a": [5, 5]}}, r"max \(5\) must be greater than min \(5\)"),
        ({"method": "z_score", "fields": {"a": [0, 0]}}, "std must be positive"),
        ({"method": "z_score", "fields": {"a": [0, 1]}, "clip": True}, "for z_score, 'clip' is a number"),
        ({"fields": {"a": ["x", 1]}}, "needs \\[min, max\\] as two numbers"),
    ],
)
async def test_normalizer_bad_settings_fail_at_start(config: dict[str, Any], message: str) -> None:
    with pytest.raises(KumeoRuntimeError, match=message):
        await started("DataNormalizer", {"config": config})


# -- MissingValueHandler ---------------------------------------------------------------------------------------------


async def test_missing_constant_on_listed_fields() -> None:
    agent = await started("MissingValueHandler", {"strategy": "constant", "fields": ["currency"], "value": "EUR"})
    assert await one(agent, {"amount": 3}) == {"amount": 3, "currency": "EUR"}
    assert await one(agent, {"currency": None, "other": None}) == {"currency": "EUR", "other": None}
    assert await one(agent, {"currency": "USD"}) == {"currency": "USD"}


async def test_missing_constant_default_fields_are_the_null_ones() -> None:
    agent = await started("MissingValueHandler", {"strategy": "constant", "value": 0})
    assert await one(agent, {"a": None, "b": 2, "c": float("nan")}) == {"a": 0, "b": 2, "c": 0}


async def test_missing_constant_needs_value() -> None:
    with pytest.raises(KumeoRuntimeError, match="the constant strategy needs a 'value'"):
        await started("MissingValueHandler", {"strategy": "constant"})


async def test_missing_drop() -> None:
    agent = await started("MissingValueHandler", {"strategy": "drop"})
    assert await one(agent, {"a": None, "b": 1}) == {"b": 1}
    agent = await started("MissingValueHandler", {"strategy": "drop", "fields": ["a"]})
    assert await one(agent, {"a": None, "b": None}) == {"b": None}


async def test_missing_mean_and_median_from_fixed_stats() -> None:
    stats = {"amount": {"mean": 100.5, "median": 80}, "age": 40}
    agent = await started("MissingValueHandler", {"strategy": "mean_imputation", "stats": stats})
    assert await one(agent, {"amount": None}) == {"amount": 100.5, "age": 40}
    agent = await started("MissingValueHandler", {"strategy": "median", "stats": stats, "fields": ["amount"]})
    assert await one(agent, {}) == {"amount": 80}


async def test_missing_rolling_mean_and_median() -> None:
    agent = await started("MissingValueHandler", {"strategy": "mean", "fields": ["x"], "window": 3})
    assert await one(agent, {"x": None}) == {"x": None}  # no history, no value: left missing
    for x in (1, 2, 3, 10):
        assert await one(agent, {"x": x}) == {"x": x}
    assert await one(agent, {}) == {"x": 5.0}  # mean of the last 3: 2, 3, 10
    agent = await started("MissingValueHandler", {"strategy": "median_imputation", "fields": ["x"]})
    for x in (1, 2, 100):
        await one(agent, {"x": x})
    assert await one(agent, {"x": None}) == {"x": 2}


async def test_missing_rolling_falls_back_to_value_and_ignores_non_numbers() -> None:
    agent = await started("MissingValueHandler", {"strategy": "mean", "value": -1})
    assert await one(agent, {"x": None}) == {"x": -1}
    await one(agent, {"x": "text"})
    await one(agent, {"x": True})
    assert await one(agent, {"x": None}) == {"x": -1}
    await one(agent, {"x": 4})
    assert await one(agent, {"x": None}) == {"x": 4.0}


async def test_missing_unknown_strategy() -> None:
    with pytest.raises(KumeoRuntimeError, match="unknown strategy 'guess'"):
        await started("MissingValueHandler", {"strategy": "guess"})


async def test_missing_window_must_be_positive() -> None:
    with pytest.raises(KumeoRuntimeError, match="'window' must be a positive integer"):
        await started("MissingValueHandler", {"strategy": "mean", "window": 0})


def test_json_syntax_errors_in_files_have_positions(tmp_path: Path) -> None:
    import asyncio

    (tmp_path / "bad.json").write_text('{\n  "required_fields": [1,,]\n}')
    agent = make("DataProcessor", {"config": "bad.json"}, base_dir=tmp_path)
    with pytest.raises(KumeoSyntaxError) as info:
        asyncio.run(agent.start())
    assert info.value.span is not None
    assert (info.value.span.path, info.value.span.line, info.value.span.column) == (str(tmp_path / "bad.json"), 2, 25)

"""Merge priority: framework defaults < task defaults < --run_config < flags < --overrides."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from orchestrator.schema.config import DefaultsLayer, RunConfigLayer
from orchestrator.schema.framework import FrameworkDefinition
from orchestrator.schema.merge import merge, merge_values
from orchestrator.schema.resolve import RunRequest, resolve_run

LAYERS = ["framework", "task", "run_config", "flags", "overrides"]


def make_framework(framework_value: str | None, task_value: str | None) -> FrameworkDefinition:
    """A framework whose defaults and task defaults optionally set the model id."""
    defaults: dict[str, Any] = {"command": "true", "config": {"supported_endpoint_types": ["chat"]}}
    if framework_value is not None:
        defaults["target"] = {"api_endpoint": {"model_id": framework_value}}
    task: dict[str, Any] = {"config": {"type": "t"}}
    if task_value is not None:
        task["target"] = {"api_endpoint": {"model_id": task_value}}
    return FrameworkDefinition.model_validate({
        "framework": {"name": "h", "pkg_name": "h", "full_name": "H", "description": "d", "url": "http://x"},
        "defaults": defaults,
        "evaluations": [{"name": "T", "description": "d", "defaults": task}],
    })


def resolve_with(present: set[str], tmp_path: Path) -> str:
    """Resolve with the model id set to the layer's name in each present layer; return the winner."""
    framework = make_framework("framework" if "framework" in present else None,
                               "task" if "task" in present else None)
    run_config = None
    if "run_config" in present:
        run_config = tmp_path / "run.yml"
        run_config.write_text("target:\n  api_endpoint:\n    model_id: run_config\n")
    request = RunRequest(
        eval_type="t", model_url="http://localhost:1/v1/chat/completions", model_type="chat", output_dir="out",
        model_id="flags" if "flags" in present else None, run_config=run_config,
        overrides="target.api_endpoint.model_id=overrides" if "overrides" in present else None,
    )
    return resolve_run(framework, request).target.api_endpoint.model_id


@pytest.mark.parametrize(("lower", "higher"), list(itertools.combinations(LAYERS, 2)))
def test_each_layer_beats_every_lower_layer(lower: str, higher: str, tmp_path: Path) -> None:
    assert resolve_with({lower, higher}, tmp_path) == higher


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_alone_supplies_the_value(layer: str, tmp_path: Path) -> None:
    assert resolve_with({layer}, tmp_path) == layer


def test_all_layers_present_overrides_win(tmp_path: Path) -> None:
    assert resolve_with(set(LAYERS), tmp_path) == "overrides"


def test_null_in_higher_layer_never_erases() -> None:
    low = RunConfigLayer.model_validate({"config": {"params": {"limit_samples": 5, "extra": {"a": 1}}}})
    high = RunConfigLayer.model_validate({"config": {"params": {"limit_samples": None, "extra": {"a": None}}}})
    merged = merge(low, high)
    assert merged.config is not None and merged.config.params is not None
    assert merged.config.params.limit_samples == 5
    assert merged.config.params.extra == {"a": 1}


def test_mappings_merge_key_by_key_and_lists_replace() -> None:
    assert merge_values({"a": {"b": 1, "c": [1, 2]}}, {"a": {"d": 2, "c": [3]}}) == {"a": {"b": 1, "c": [3], "d": 2}}


def test_extra_is_merged_deeply_across_layers() -> None:
    low = DefaultsLayer.model_validate({"config": {"params": {"extra": {"judge": {"model": "m", "args": {"x": 1}}}}}})
    high = RunConfigLayer.model_validate({"config": {"params": {"extra": {"judge": {"url": "http://j"}}}}})
    merged = merge(low, high)
    assert merged.config is not None and merged.config.params is not None
    assert merged.config.params.extra == {"judge": {"model": "m", "args": {"x": 1}, "url": "http://j"}}


def test_merge_is_pure() -> None:
    low = RunConfigLayer.model_validate({"config": {"params": {"extra": {"a": {"b": 1}}}}})
    high = RunConfigLayer.model_validate({"config": {"params": {"extra": {"a": {"c": 2}}}}})
    merge(low, high)
    assert low.config is not None and low.config.params is not None
    assert low.config.params.extra == {"a": {"b": 1}}

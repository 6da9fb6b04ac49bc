"""YAML files: malformed YAML, duplicates, unknown keys and wrong types fail at file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.schema.config import RunConfigLayer
from orchestrator.schema.errors import ConfigError
from orchestrator.schema.loading import load_model


def load(tmp_path: Path, text: str) -> RunConfigLayer:
    path = tmp_path / "run.yml"
    path.write_text(text)
    return load_model(RunConfigLayer, path)


def error_for(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert info.value.exit_code == 2
    message = str(info.value)
    assert "\n" not in message
    return message


def test_valid_run_config_loads(tmp_path: Path) -> None:
    layer = load(tmp_path, "config:\n  type: ocrbench\n  params:\n    parallelism: 50\n    limit_samples: 20\n"
                           "target:\n  api_endpoint:\n    model_id: m\n    type: vlm\n    url: http://h:8000/v1\n"
                           "    api_key: NVIDIA_API_KEY\n")
    assert layer.config is not None and layer.config.params is not None
    assert layer.config.params.parallelism == 50
    assert layer.target is not None and layer.target.api_endpoint is not None
    assert layer.target.api_endpoint.api_key == "NVIDIA_API_KEY"


def test_api_key_name_is_accepted_as_alias(tmp_path: Path) -> None:
    layer = load(tmp_path, "target:\n  api_endpoint:\n    api_key_name: MY_KEY\n")
    assert layer.target is not None and layer.target.api_endpoint is not None
    assert layer.target.api_endpoint.api_key == "MY_KEY"


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    message = error_for(tmp_path, "config:\n  type: x\n  params: [1, 2\n")
    assert f"{tmp_path / 'run.yml'}:4" in message or f"{tmp_path / 'run.yml'}:3" in message
    assert "malformed YAML" in message


def test_unknown_key_names_key_file_line_and_suggests(tmp_path: Path) -> None:
    message = error_for(tmp_path, "config:\n  params:\n    limit_sample: 5\n")
    assert message.startswith(f"{tmp_path / 'run.yml'}:3: unknown key 'config.params.limit_sample'")
    assert "did you mean 'limit_samples'" in message
    assert "config.params.extra" in message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    message = error_for(tmp_path, "config: {}\ntargets: {}\n")
    assert ":2: unknown key 'targets'" in message
    assert "did you mean 'target'" in message


def test_extra_is_free_form(tmp_path: Path) -> None:
    layer = load(tmp_path, "config:\n  params:\n    extra:\n      anything: {goes: [here]}\n")
    assert layer.config is not None and layer.config.params is not None
    assert layer.config.params.extra == {"anything": {"goes": ["here"]}}


def test_wrong_type_names_key_and_value(tmp_path: Path) -> None:
    message = error_for(tmp_path, "config:\n  params:\n    parallelism: many\n")
    assert ":3: config.params.parallelism:" in message
    assert "'many'" in message


def test_unknown_model_type(tmp_path: Path) -> None:
    message = error_for(tmp_path, "target:\n  api_endpoint:\n    type: embeddings\n")
    assert "target.api_endpoint.type" in message and "'chat', 'completions' or 'vlm'" in message


def test_invalid_url(tmp_path: Path) -> None:
    message = error_for(tmp_path, "target:\n  api_endpoint:\n    url: localhost:8000\n")
    assert "is not an http(s) URL" in message


def test_api_key_value_is_refused_as_a_name(tmp_path: Path) -> None:
    message = error_for(tmp_path, "target:\n  api_endpoint:\n    api_key: sk-abc123/xyz\n")
    assert "not an environment variable name" in message


def test_duplicate_key(tmp_path: Path) -> None:
    message = error_for(tmp_path, "config:\n  type: a\n  type: b\n")
    assert ":3: duplicate key 'type'" in message


def test_top_level_must_be_mapping(tmp_path: Path) -> None:
    assert "expected a mapping" in error_for(tmp_path, "- a\n- b\n")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_model(RunConfigLayer, tmp_path / "nope.yml")


def test_empty_file_is_an_empty_layer(tmp_path: Path) -> None:
    assert load(tmp_path, "") == RunConfigLayer()

"""Resolving a run against the shipped framework files: tasks, flags, endpoint types, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.schema.errors import ConfigError, InputError, UnknownTaskError
from orchestrator.schema.framework import FrameworkDefinition
from orchestrator.schema.loading import load_model
from orchestrator.schema.resolve import RunRequest, resolve_run

URL = "http://localhost:8000/v1/chat/completions"


@pytest.fixture
def lm(lm_eval_framework: Path) -> FrameworkDefinition:
    return load_model(FrameworkDefinition, lm_eval_framework)


@pytest.fixture
def vlm(vlm_framework: Path) -> FrameworkDefinition:
    return load_model(FrameworkDefinition, vlm_framework)


def request(**kwargs: str) -> RunRequest:
    values = {"eval_type": "gsm8k", "model_id": "m", "model_url": URL, "model_type": "chat", "output_dir": "out"}
    values.update(kwargs)
    return RunRequest(**values)  # type: ignore[arg-type]


def test_task_defaults_apply_over_framework_defaults(lm: FrameworkDefinition) -> None:
    evaluation = resolve_run(lm, request(eval_type="ifeval"))
    assert evaluation.config.params.max_new_tokens == 1280
    assert evaluation.config.params.task == "ifeval"
    assert evaluation.config.params.parallelism == 10
    assert evaluation.framework_name == "lm-eval"


def test_harness_prefix_is_accepted_and_stripped(lm: FrameworkDefinition) -> None:
    assert resolve_run(lm, request(eval_type="lm-eval.gsm8k")).config.type == "gsm8k"
    assert resolve_run(lm, request(eval_type="lm_eval.gsm8k")).config.type == "gsm8k"


def test_unlisted_lm_eval_task_runs_with_explicit_prefix(lm: FrameworkDefinition) -> None:
    evaluation = resolve_run(lm, request(eval_type="lm-eval.lambada_openai", model_type="completions"))
    assert evaluation.config.type == "lambada_openai"
    assert evaluation.config.params.task == "lambada_openai"


def test_unknown_task_lists_close_matches(lm: FrameworkDefinition) -> None:
    with pytest.raises(UnknownTaskError) as info:
        resolve_run(lm, request(eval_type="gsm8"))
    message = str(info.value)
    assert "unknown task 'gsm8'" in message and "gsm8k" in message and "lm-eval.gsm8" in message
    assert info.value.exit_code == 2


def test_unknown_harness_prefix(vlm: FrameworkDefinition) -> None:
    with pytest.raises(UnknownTaskError, match="unknown harness 'lm-eval'"):
        resolve_run(vlm, request(eval_type="lm-eval.ocrbench", model_type="vlm"))


def test_vlm_has_no_passthrough(vlm: FrameworkDefinition) -> None:
    with pytest.raises(UnknownTaskError, match="unknown task 'docvqa'"):
        resolve_run(vlm, request(eval_type="vlmevalkit.docvqa", model_type="vlm"))


def test_eval_type_from_run_config(lm: FrameworkDefinition, tmp_path: Path) -> None:
    run_config = tmp_path / "r.yml"
    run_config.write_text("config:\n  type: mmlu\n")
    evaluation = resolve_run(lm, request(eval_type=None, model_type="completions", run_config=run_config))  # type: ignore[arg-type]
    assert evaluation.config.type == "mmlu"


def test_missing_eval_type(lm: FrameworkDefinition) -> None:
    with pytest.raises(InputError, match="missing --eval_type"):
        resolve_run(lm, request(eval_type=None))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("missing", "flag"),
    [("model_id", "--model_id"), ("model_url", "--model_url"), ("model_type", "--model_type"),
     ("output_dir", "--output_dir")],
)
def test_missing_required_value_names_the_flag(lm: FrameworkDefinition, missing: str, flag: str) -> None:
    with pytest.raises(InputError, match=flag) as info:
        resolve_run(lm, request(**{missing: None}))  # type: ignore[arg-type]
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("model_type", "embedding", "--model_type: .*'chat', 'completions' or 'vlm'"),
        ("model_url", "localhost:8000/v1", "--model_url: .*not an http"),
        ("api_key_name", "sk-123-secret", "--api_key_name: .*not an environment variable name"),
    ],
)
def test_bad_flag_values(lm: FrameworkDefinition, flag: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_run(lm, request(**{flag: value}))


def test_bad_api_key_value_is_not_echoed_in_full_context(lm: FrameworkDefinition) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_run(lm, request(api_key_name="sk secret"))
    assert str(info.value).count("\n") == 0


def test_endpoint_type_not_supported_by_task(lm: FrameworkDefinition) -> None:
    with pytest.raises(InputError, match=r"task 'mmlu' does not support --model_type chat.*supports: completions"):
        resolve_run(lm, request(eval_type="mmlu"))


def test_vlm_endpoint_may_run_chat_tasks(lm: FrameworkDefinition) -> None:
    assert resolve_run(lm, request(eval_type="ifeval", model_type="vlm")).target.api_endpoint.type == "vlm"


def test_bad_override_value_type(lm: FrameworkDefinition) -> None:
    with pytest.raises(ConfigError, match=r"--overrides: config\.params\.limit_samples"):
        resolve_run(lm, request(overrides="config.params.limit_samples=lots"))


def test_unknown_override_key(lm: FrameworkDefinition) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'config\.params\.temprature'.*did you mean 'temperature'"):
        resolve_run(lm, request(overrides="config.params.temprature=0.5"))


def test_seed_run_config_shape(vlm: FrameworkDefinition, tmp_path: Path) -> None:
    run_config = tmp_path / "run.yml"
    run_config.write_text(
        "config:\n  type: ocrbench\n  params:\n    parallelism: 50\n    limit_samples: 20\n"
        "target:\n  api_endpoint:\n    model_id: my_model\n    type: vlm\n"
        "    url: http://localhost:8000/v1/chat/completions\n    api_key: NVIDIA_API_KEY\n"
    )
    evaluation = resolve_run(vlm, RunRequest(run_config=run_config, output_dir="out"))
    assert evaluation.config.params.parallelism == 50
    assert evaluation.config.params.limit_samples == 20
    assert evaluation.config.params.max_new_tokens == 2048
    assert evaluation.target.api_endpoint.api_key == "NVIDIA_API_KEY"

"""Rendering: one pass, strict, shell-safe. Hostile values arrive byte for byte and never execute."""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import subprocess
from pathlib import Path

import pytest

from orchestrator.runtime.render import TemplateFailedError, render_command
from orchestrator.schema.config import Evaluation
from orchestrator.schema.errors import ConfigError
from orchestrator.schema.framework import FrameworkDefinition
from orchestrator.schema.loading import load_model
from orchestrator.schema.resolve import RunRequest, resolve_run

URL = "http://localhost:8000/v1/chat/completions"
HOSTILE = "Say \"hi\" & 'bye'; $(touch PWNED) `touch PWNED2` $HOME \\n\n; rm -rf / # \u00e9\nEOF\n'EOF'"


def resolve(framework: Path, **kwargs: object) -> Evaluation:
    values: dict[str, object] = {"model_id": "my_model", "model_url": URL, "output_dir": "/tmp/out"}
    values.update(kwargs)
    return resolve_run(load_model(FrameworkDefinition, framework), RunRequest(**values))  # type: ignore[arg-type]


def vlm_config_json(command: str) -> dict[str, object]:
    """The JSON the VLMEvalKit command writes (between the heredoc markers)."""
    match = re.search(r"<< 'EOF'\n(.*?)\nEOF\n", command, re.S)
    assert match, command
    loaded: dict[str, object] = json.loads(match.group(1))
    return loaded


def test_documented_ocrbench_example(vlm_framework: Path) -> None:
    command = render_command(resolve(vlm_framework, eval_type="ocrbench", model_type="vlm"))
    config = vlm_config_json(command)
    model = config["model"]["my_model"]  # type: ignore[index]
    assert model["class"] == "CustomOAIEndpoint"
    assert model["model"] == "my_model"
    assert model["api_base"] == URL
    assert (model["max_tokens"], model["temperature"]) == (2048, 0.0)
    assert config["data"] == {"OCRBench": {"class": "OCRBench", "dataset": "OCRBench", "model": "my_model"}}
    assert command.splitlines()[-1] == (
        "python -m vlmeval.run --config /tmp/out/vlmeval_config.json --work-dir /tmp/out --api-nproc 4"
    )


def test_full_fidelity_images_by_default_and_overridable(vlm_framework: Path) -> None:
    default = vlm_config_json(render_command(resolve(vlm_framework, eval_type="chartqa", model_type="vlm")))
    assert default["model"]["my_model"]["img_size"] == -1  # type: ignore[index]
    assert default["model"]["my_model"]["img_detail"] == "high"  # type: ignore[index]
    custom = vlm_config_json(render_command(resolve(
        vlm_framework, eval_type="chartqa", model_type="vlm",
        overrides="config.params.extra.img_size=512,config.params.extra.img_detail=low")))
    assert custom["model"]["my_model"]["img_size"] == 512  # type: ignore[index]


def test_judge_task_without_judge_fails_clearly(vlm_framework: Path) -> None:
    with pytest.raises(TemplateFailedError, match="scored by an LLM judge and none is configured") as info:
        render_command(resolve(vlm_framework, eval_type="mmmu_judge", model_type="vlm"))
    assert info.value.exit_code == 2


def test_api_key_value_never_rendered(lm_eval_framework: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_API_KEY", "sk-very-secret-value")
    command = render_command(resolve(lm_eval_framework, eval_type="gsm8k", model_type="chat",
                                     api_key_name="MY_API_KEY"))
    assert "sk-very-secret-value" not in command
    assert 'OPENAI_API_KEY="${MY_API_KEY}"' in command


def test_undefined_value_is_a_config_error(lm_eval_framework: Path) -> None:
    evaluation = resolve(lm_eval_framework, eval_type="gsm8k", model_type="chat")
    broken = evaluation.model_copy(update={"command": "run {{ config.params.nope }}"})
    with pytest.raises(ConfigError, match="undefined value"):
        render_command(broken)


def test_template_syntax_error_is_a_config_error(lm_eval_framework: Path) -> None:
    evaluation = resolve(lm_eval_framework, eval_type="gsm8k", model_type="chat")
    with pytest.raises(ConfigError, match="syntax error"):
        render_command(evaluation.model_copy(update={"command": "run {% if %}"}))


def test_render_is_one_pass(lm_eval_framework: Path) -> None:
    evaluation = resolve(lm_eval_framework, eval_type="gsm8k", model_type="chat",
                         overrides="config.params.extra.system_instruction='{{ 7 * 7 }}'")
    command = render_command(evaluation)
    assert "'{{ 7 * 7 }}'" in command and "49" not in command


def fake_tool(directory: Path, name: str) -> None:
    """A test double for a harness executable: records its argv as JSON and exits 0."""
    path = directory / name
    path.write_text(
        "#!/usr/bin/env python3\nimport json, os, sys\n"
        f"open(os.path.join({str(directory)!r}, {name + '.argv'!r}), 'w').write(json.dumps(sys.argv[1:]))\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def run_rendered(command: str, bindir: Path, cwd: Path) -> None:
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "MY_API_KEY": "sk-x"}
    subprocess.run(["bash", "-c", command], check=True, cwd=cwd, env=env)


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[Path, Path, Path]:
    bindir, out, cwd = tmp_path / "bin", tmp_path / "out dir; $(touch PWNED)", tmp_path / "cwd"
    for path in (bindir, out, cwd):
        path.mkdir()
    return bindir, out, cwd


def test_hostile_system_prompt_reaches_vlmeval_config_intact(vlm_framework: Path,
                                                             sandbox: tuple[Path, Path, Path]) -> None:
    bindir, out, cwd = sandbox
    fake_tool(bindir, "python")
    evaluation = resolve(vlm_framework, eval_type="ocrbench", model_type="vlm", output_dir=str(out),
                         overrides=f"config.params.extra.system_prompt={json.dumps(HOSTILE)}")
    assert evaluation.config.params.extra["system_prompt"] == HOSTILE
    run_rendered(render_command(evaluation), bindir, cwd)
    written = json.loads((out / "vlmeval_config.json").read_text(encoding="utf-8"))
    assert written["model"]["my_model"]["system_prompt"] == HOSTILE
    argv = json.loads((bindir / "python.argv").read_text())
    assert argv[:4] == ["-m", "vlmeval.run", "--config", str(out / "vlmeval_config.json")]
    assert list(cwd.iterdir()) == [] and not (out.parent / "PWNED").exists()


def test_hostile_judge_args_arrive_intact(vlm_framework: Path, sandbox: tuple[Path, Path, Path]) -> None:
    bindir, out, cwd = sandbox
    fake_tool(bindir, "python")
    judge = {"model": "judge-$(touch PWNED)", "url": "http://localhost:9/v1/chat/completions",
             "api_key": "MY_API_KEY", "args": {"note": HOSTILE}}
    evaluation = resolve(vlm_framework, eval_type="mmmu_judge", model_type="vlm", output_dir=str(out),
                         overrides=f"config.params.extra.judge={json.dumps(judge)}")
    run_rendered(render_command(evaluation), bindir, cwd)
    argv = json.loads((bindir / "python.argv").read_text())
    assert argv[argv.index("--judge") + 1] == "judge-$(touch PWNED)"
    assert json.loads(argv[argv.index("--judge-args") + 1]) == {"note": HOSTILE}
    assert list(cwd.iterdir()) == []


def test_hostile_values_reach_lm_eval_argv_intact(lm_eval_framework: Path, sandbox: tuple[Path, Path, Path]) -> None:
    bindir, out, cwd = sandbox
    fake_tool(bindir, "lm-eval")
    model_id = "org/model;$(touch PWNED)"
    evaluation = resolve(
        lm_eval_framework, eval_type="gsm8k", model_type="chat", output_dir=str(out), model_id=model_id,
        model_url="http://localhost:8000/v1/chat/completions?x=a,b", api_key_name="MY_API_KEY",
        overrides=f"config.params.extra.system_instruction={json.dumps(HOSTILE)},config.params.limit_samples=3",
    )
    run_rendered(render_command(evaluation), bindir, cwd)
    argv = json.loads((bindir / "lm-eval.argv").read_text())
    model_args = json.loads(argv[argv.index("--model_args") + 1])
    assert model_args["model"] == model_id
    assert model_args["base_url"] == "http://localhost:8000/v1/chat/completions?x=a,b"
    assert argv[argv.index("--system_instruction") + 1] == HOSTILE
    assert argv[argv.index("--output_path") + 1] == str(out)
    assert argv[argv.index("--limit") + 1] == "3"
    assert argv[:3] == ["run", "--tasks", "gsm8k"]
    assert list(cwd.iterdir()) == []


def test_every_shipped_task_renders_for_every_supported_endpoint(lm_eval_framework: Path,
                                                                  vlm_framework: Path) -> None:
    judge = 'config.params.extra.judge={"model": "j", "url": "http://localhost:9/v1", "api_key": "K"}'
    for path in (lm_eval_framework, vlm_framework):
        definition = load_model(FrameworkDefinition, path)
        for task in definition.evaluations:
            for endpoint in task.endpoint_types or definition.defaults.config.supported_endpoint_types:  # type: ignore[union-attr]
                evaluation = resolve(path, eval_type=task.type, model_type=endpoint, overrides=judge
                                     if path == vlm_framework else None)
                command = render_command(evaluation)
                syntax = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True, check=False)
                assert syntax.returncode == 0, (task.type, endpoint, syntax.stderr)


# ---- one owner of retries and timeouts (orchestrator/runtime/retries.py) ----------------------------------------

ADAPTER_OFF = "target.api_endpoint.adapter_config.enabled=false"


def lm_eval_model_args(command: str) -> dict[str, object]:
    """lm-eval's --model_args (JSON) from a rendered command."""
    words = shlex.split(command)
    loaded: dict[str, object] = json.loads(words[words.index("--model_args") + 1])
    return loaded


def harness_client(lm_eval: Path, vlm: Path, overrides: str | None = None) -> list[tuple[object, ...]]:
    """(attempts, timeout, wait) as rendered for lm-eval (gsm8k) and VLMEvalKit (ocrbench); wait is VLMEvalKit's."""
    args = lm_eval_model_args(render_command(resolve(lm_eval, eval_type="gsm8k", model_type="chat",
                                                     overrides=overrides)))
    vlm_config = vlm_config_json(render_command(resolve(vlm, eval_type="ocrbench", model_type="vlm",
                                                        overrides=overrides)))
    model = vlm_config["model"]["my_model"]  # type: ignore[index]
    return [(args["max_retries"], args["timeout"]), (model["retry"], model["timeout"], model.get("wait"))]


def test_with_the_adapter_the_harness_makes_one_attempt_and_outwaits_the_proxy(lm_eval_framework: Path,
                                                                               vlm_framework: Path) -> None:
    # The proxy: request_timeout (lm-eval 30 s, VLMEvalKit 60 s) per attempt, no retry after 600 s; + 5 s margin.
    assert harness_client(lm_eval_framework, vlm_framework) == [(1, 600 + 30 + 5), (1, 600 + 60 + 5, 0)]
    # VLMEvalKit's wait is a sleep after each failed attempt: with one attempt, only a delay.
    assert harness_client(lm_eval_framework, vlm_framework, "config.params.extra.wait=7")[1][2] == 0


def test_the_harness_timeout_follows_the_proxys_effective_values(lm_eval_framework: Path,
                                                                vlm_framework: Path) -> None:
    def endpoint(config: str) -> str:
        return f"target.api_endpoint.adapter_config.interceptors=[{{name: endpoint, config: {config}}}]"

    # The endpoint interceptor's own request_timeout and max_retry_seconds win over config.params.
    overridden = harness_client(lm_eval_framework, vlm_framework,
                                endpoint("{request_timeout: 7.5, max_retry_seconds: 20}"))
    assert overridden == [(1, 33), (1, 33, 0)]  # ceil(20 + 7.5) + 5
    # No retries at the proxy (its max_retries, or the run's): one attempt of request_timeout is its whole budget.
    assert harness_client(lm_eval_framework, vlm_framework,
                          endpoint("{request_timeout: 7, max_retries: 0}")) == [(1, 12), (1, 12, 0)]
    assert harness_client(lm_eval_framework, vlm_framework,
                          "config.params.max_retries=0,config.params.request_timeout=9") == [(1, 14), (1, 14, 0)]


def test_without_the_adapter_the_harness_retries_as_the_run_says(lm_eval_framework: Path, vlm_framework: Path) -> None:
    # max_retries counts retries; both harnesses count attempts (VLMEvalKit's retry=0 would ask nothing).
    assert harness_client(lm_eval_framework, vlm_framework, ADAPTER_OFF) == [(6, 30), (6, 60, None)]
    custom = harness_client(lm_eval_framework, vlm_framework, f"{ADAPTER_OFF},config.params.max_retries=0,"
                            "config.params.request_timeout=12.5,config.params.extra.wait=7")
    assert custom == [(1, 12.5), (1, 12.5, 7)]
    command = render_command(resolve(lm_eval_framework, eval_type="gsm8k", model_type="chat", overrides=ADAPTER_OFF))
    assert lm_eval_model_args(command)["base_url"] == URL  # and the harness talks to the endpoint itself


def test_a_proxied_judge_makes_one_attempt_and_outwaits_its_proxy(vlm_framework: Path) -> None:
    judge = {"model": "j", "url": "http://localhost:9/v1/chat/completions", "api_key": "K",
             "adapter_config": {"interceptors": [{"name": "endpoint", "config": {"request_timeout": 7,
                                                                                 "max_retries": 0}}]}}
    evaluation = resolve(vlm_framework, eval_type="mmmu_judge", model_type="vlm",
                         overrides=f"config.params.extra.judge={json.dumps(judge)}")
    command = render_command(evaluation)
    assert "EVALS_JUDGE_ATTEMPTS=1 EVALS_JUDGE_TIMEOUT=12 " in command  # 7 s, one attempt, + the 5 s margin
    # without a proxy of its own (the adapter off) the judge keeps VLMEvalKit's own retries
    off = resolve(vlm_framework, eval_type="mmmu_judge", model_type="vlm",
                  overrides=f"config.params.extra.judge={json.dumps(judge)},"
                            "target.api_endpoint.adapter_config.enabled=false")
    assert "EVALS_JUDGE_ATTEMPTS" not in render_command(off)

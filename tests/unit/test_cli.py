"""The core_evals CLI as a user runs it: ls, run_eval, --dry_run, errors and exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.schema.results import ResultsFile

REPO = Path(__file__).resolve().parents[2]
FAKE = REPO / "tests" / "fixtures" / "frameworks" / "fake-lm-eval" / "framework.yml"
URL = "http://localhost:8000/v1/chat/completions"


def cli(*args: str, framework: Path | None = FAKE, env: dict[str, str] | None = None,
        cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run `python -m orchestrator.runtime [--framework F] ARGS` and capture its output."""
    prefix = ["--framework", str(framework)] if framework else []
    return subprocess.run([sys.executable, "-m", "orchestrator.runtime", *prefix, *args], capture_output=True,
                          check=False, text=True, cwd=cwd, env={**os.environ, **(env or {})}, timeout=60)


def run_eval(out: Path, *extra: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    base = ["run_eval", "--eval_type", "gsm8k", "--model_id", "m", "--model_url", URL, "--model_type", "chat",
            "--output_dir", str(out)]
    return cli(*base, *extra, **kwargs)  # type: ignore[arg-type]


def test_ls_lists_tasks_in_evals_factory_format(vlm_framework: Path) -> None:
    result = cli("ls", framework=vlm_framework)
    assert result.returncode == 0
    assert result.stdout.splitlines() == ["Available tasks:"] + [
        f"* {task} (in vlmevalkit)" for task in
        ["ai2d_judge", "chartqa", "mathvista-mini", "mmmu_judge", "ocrbench", "ocr_reasoning", "slidevqa"]
    ]


def test_dry_run_prints_config_then_command_and_writes_nothing(tmp_path: Path, vlm_framework: Path) -> None:
    out = tmp_path / "out"
    result = cli("run_eval", "--eval_type", "ocrbench", "--model_id", "my_model", "--model_type", "vlm",
                 "--model_url", URL, "--output_dir", str(out), "--dry_run", framework=vlm_framework)
    assert result.returncode == 0, result.stderr
    head, _, command = result.stdout.partition("Rendered command:")
    assert head.startswith("Rendered config:")
    head, _, data_step = head.partition("Data step (")
    assert "python -m evals_vlmeval.lmudata --dataset OCRBench --class OCRBench --eval_type ocrbench" in data_step
    config = yaml.safe_load(head.removeprefix("Rendered config:"))
    assert set(config) == {"command", "data_command", "framework_name", "pkg_name", "config", "target"}
    assert set(config["config"]) >= {"output_dir", "params", "supported_endpoint_types", "type"}
    endpoint = config["target"]["api_endpoint"]
    assert endpoint.pop("adapter_config")["enabled"] is True
    assert endpoint == {"api_key": None, "model_id": "my_model", "stream": False, "type": "vlm", "url": URL}
    assert "python -m vlmeval.run" in command and "--api-nproc 4" in command
    assert not out.exists()


def test_run_eval_streams_logs_and_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_eval(out, "--overrides", "config.params.limit_samples=10")
    assert result.returncode == 0, result.stderr
    assert "fake harness: evaluating 10 samples" in result.stdout
    log = (out / "logs" / "harness.log").read_text()
    assert "fake harness: evaluating 10 samples" in log and "to stderr" in log
    results = ResultsFile.model_validate(yaml.safe_load((out / "results.yml").read_text()))
    score = results.results.tasks["gsm8k"].metrics["exact_match__strict-match"].scores["exact_match__strict-match"]
    assert score.value == pytest.approx(0.7)
    assert results.provenance.exit_code == 0
    assert results.provenance.harness == "lm-eval"
    assert len(results.provenance.framework_sha256) == 64
    assert results.provenance.finished_at >= results.provenance.started_at
    assert "--limit 10" in results.provenance.command
    run_config = yaml.safe_load((out / "run_config.yml").read_text())
    assert run_config["config"]["params"]["limit_samples"] == 10


def test_harness_exit_code_is_returned_and_no_results_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_eval(out, "--overrides", "config.params.extra.exit_code=3")
    assert result.returncode == 3
    assert "exited with code 3" in result.stderr and "harness.log" in result.stderr
    assert not (out / "results.yml").exists()


def test_api_key_travels_by_name_and_is_masked(tmp_path: Path) -> None:
    out = tmp_path / "out"
    secret = "sk-test-0123456789abcdef"
    result = run_eval(out, "--api_key_name", "MY_API_KEY", env={"MY_API_KEY": secret})
    assert result.returncode == 0, result.stderr
    assert "key is ***" in result.stdout
    for path in out.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path
    assert "MY_API_KEY" in (out / "run_config.yml").read_text()


def test_unset_api_key_variable_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_eval(out, "--api_key_name", "SURELY_UNSET_KEY_VAR", env={"SURELY_UNSET_KEY_VAR": ""})
    assert result.returncode == 2
    assert "SURELY_UNSET_KEY_VAR" in result.stderr and "not set" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--eval_type", "gsm9k"], "unknown task 'gsm9k'"),
        (["--model_type", "embeddings"], "--model_type"),
        (["--model_url", "not a url"], "--model_url"),
        (["--overrides", "config.params.limit_samples"], "has no '='"),
        (["--overrides", "config.params.parallelism=two"], "config.params.parallelism"),
        (["--eval_type", "mmlu"], "does not support --model_type chat"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "out"
    result = run_eval(out, *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_missing_required_flag(tmp_path: Path) -> None:
    result = cli("run_eval", "--eval_type", "gsm8k", "--model_url", URL, "--model_type", "chat",
                 "--output_dir", str(tmp_path / "o"))
    assert result.returncode == 2
    assert "missing target.api_endpoint.model_id" in result.stderr and "--model_id" in result.stderr


def test_malformed_run_config_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("config:\n  params:\n    limit_samples: [\n")
    result = run_eval(tmp_path / "out", "--run_config", str(bad))
    assert result.returncode == 2
    assert f"{bad}:" in result.stderr and "malformed YAML" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_key_in_run_config(tmp_path: Path) -> None:
    config = tmp_path / "run.yml"
    config.write_text("config:\n  params:\n    paralelism: 3\n")
    result = run_eval(tmp_path / "out", "--run_config", str(config))
    assert result.returncode == 2
    assert f"{config}:3: unknown key 'config.params.paralelism'" in result.stderr


def test_unwritable_output_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_eval(blocker / "out")
    assert result.returncode == 2
    assert "cannot write to output dir" in result.stderr


def test_unknown_subcommand_and_flag_are_usage_errors() -> None:
    for args in (["frobnicate"], ["run_eval", "--no-such-flag"]):
        result = cli(*args)
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_framework_file_missing(tmp_path: Path) -> None:
    result = cli("ls", framework=tmp_path / "nope.yml")
    assert result.returncode == 2 and "framework file not found" in result.stderr


def test_core_evals_entry_point_has_framework_preset(tmp_path: Path) -> None:
    """``core_evals`` linked as ``core_evals_<h>`` (as every Dockerfile links it) presets the source tree's
    images/<harness>/framework.yml; the documented form repeats the program name
    (`docker run IMAGE core_evals_<h> ls`)."""
    link = tmp_path / "core_evals_lm_eval"
    link.symlink_to(Path(sys.executable).parent / "core_evals")
    env = {key: value for key, value in os.environ.items() if key != "EVALS_FRAMEWORK_FILE"}
    for args in (["ls"], ["core_evals_lm_eval", "ls"]):
        result = subprocess.run([str(link), *args], capture_output=True, text=True, timeout=60, check=False, env=env)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == "Available tasks:"
        for task in ["mmlu", "mmlu_pro", "gsm8k", "arc_challenge", "hellaswag", "truthfulqa_mc2", "winogrande",
                     "ifeval", "bbh", "humaneval", "mbpp"]:
            assert f"* {task} (in lm-eval)" in lines
    unknown = tmp_path / "core_evals_no_such_harness"
    unknown.symlink_to(Path(sys.executable).parent / "core_evals")
    result = subprocess.run([str(unknown), "ls"], capture_output=True, text=True, timeout=60, check=False, env=env)
    assert result.returncode == 2 and "--framework" in result.stderr


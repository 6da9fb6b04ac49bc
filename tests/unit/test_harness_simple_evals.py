"""images/simple-evals: the framework's tasks and rendered commands, and the parser on simple-evals' output files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.runtime.harness_parser import load_parsers
from orchestrator.runtime.render import render_command
from orchestrator.schema.errors import InputError, ResultsParseError
from orchestrator.schema.framework import FrameworkDefinition
from orchestrator.schema.loading import load_model
from orchestrator.schema.resolve import RunRequest, resolve_run

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "images" / "simple-evals"
JUDGED = {"AIME_2025", "AA_AIME_2024", "AA_math_test_500", "AIME_2025_aa_v2", "simpleqa", "healthbench",
          "healthbench_consensus", "healthbench_hard", "browsecomp"}
"""The tasks simple-evals scores with an LLM judge (NVIDIA's framework gives them judge settings)."""


def definition() -> FrameworkDefinition:
    return load_model(FrameworkDefinition, HARNESS / "framework.yml")


def command(task: str, overrides: str | None = None, **more: Any) -> str:
    request = RunRequest(eval_type=task, model_id="org/model", model_type="chat", output_dir="/tmp/out",
                         model_url="http://localhost:8000/v1/chat/completions", overrides=overrides, **more)
    return render_command(resolve_run(definition(), request))


def test_every_nvidia_task_is_offered_for_chat() -> None:
    doc = yaml.safe_load((HARNESS / "framework.yml").read_text(encoding="utf-8"))
    types = [entry["defaults"]["config"]["type"] for entry in doc["evaluations"]]
    assert len(types) == 88 and len(set(types)) == 88
    assert {"gpqa_diamond", "math_test_500", "mmlu_pro", "mgsm", "humaneval", "mmlu_zh-lite", "mmlu_yo",
            "gpqa_diamond_aa_v3", "mmlu_pro_llama_4"} <= set(types)
    assert all(entry["defaults"]["config"]["supported_endpoint_types"] == ["chat"] for entry in doc["evaluations"])
    needs = {entry["defaults"]["config"]["type"] for entry in doc["evaluations"]
             if (entry["defaults"]["config"]["params"].get("extra") or {}).get("needs_judge")}
    assert needs == JUDGED


def test_gpqa_command_one_attempt_through_the_proxy_and_no_judge() -> None:
    rendered = command("gpqa_diamond", "config.params.limit_samples=3")
    assert "python -m evals_simple_evals.run --eval_name gpqa_diamond" in rendered
    assert "--model org/model --url http://localhost:8000/v1/chat/completions" in rendered
    assert "--max_retries 1 " in rendered  # the adapter proxy retries
    assert "--first_n 3" in rendered and "--num_repeats 1" in rendered
    assert "--out_dir /tmp/out/gpqa_diamond --cache_dir /tmp/out/gpqa_diamond/cache" in rendered
    assert rendered.rstrip().endswith("--no_judge")
    assert "API_KEY= python" in rendered


def test_without_the_proxy_the_harness_retries_itself() -> None:
    rendered = command("mmlu_pro", "target.api_endpoint.adapter_config.enabled=false,config.params.max_retries=4,"
                                   "config.params.request_timeout=33")
    assert "--max_retries 5 --timeout 33" in rendered


def test_api_key_goes_by_name_and_repeats_and_custom_config_render() -> None:
    rendered = command("gpqa_diamond_aa_v2", None, api_key_name="MY_KEY")
    assert 'API_KEY="${MY_KEY}" python' in rendered
    assert "--eval_name gpqa_diamond" in rendered and "--num_repeats 5" in rendered
    assert "cat > /tmp/out/gpqa_diamond_aa_v2/custom_config.yml << 'EOF'" in rendered
    assert '"name": "aa_v2_regex"' in rendered
    assert "--custom_eval_cfg_file /tmp/out/gpqa_diamond_aa_v2/custom_config.yml" in rendered


@pytest.mark.parametrize("task", sorted(JUDGED))
def test_a_judged_task_without_a_judge_is_refused_naming_the_keys(task: str) -> None:
    with pytest.raises(InputError, match=f"task {task} is scored by an LLM judge and none is configured") as info:
        command(task)
    assert info.value.exit_code == 2
    for key in ("config.params.extra.judge.url", ".model_id", ".api_key"):
        assert key in str(info.value)


def test_a_judge_is_any_openai_compatible_endpoint_behind_its_own_proxy() -> None:
    judge = {"url": "https://judge.example/v1/chat/completions", "model_id": "judge/m", "api_key": "JUDGE_KEY"}
    rendered = command("simpleqa", f"config.params.extra.judge={json.dumps(judge)}")
    assert "--judge_url https://judge.example/v1/chat/completions" in rendered  # run_eval puts its proxy's origin
    assert "--judge_model_id judge/m --judge_backend generic --judge_api_key_name JUDGE_KEY" in rendered
    assert "--judge_max_retries 1" in rendered  # its proxy retries
    assert "--no_judge" not in rendered
    with pytest.raises(InputError, match="must be the NAME of an environment variable"):
        command("simpleqa", "config.params.extra.judge=" + json.dumps({**judge, "api_key": "sk-abc$(id)"}))


def test_math_takes_an_optional_judge() -> None:
    assert command("math_test_500").rstrip().endswith("--no_judge")
    judge = {"url": "http://judge:1/v1/chat/completions", "model_id": "j"}
    assert "--judge_model_id j" in command("math_test_500", f"config.params.extra.judge={json.dumps(judge)}")


# ---- the parser ------------------------------------------------------------------------------------------------


def write_run(tmp_path: Path, eval_type: str, metrics: dict[str, Any], lines: list[dict[str, Any]]) -> Path:
    folder = tmp_path / eval_type
    (folder / "cache").mkdir(parents=True)
    (tmp_path / "run_config.yml").write_text(yaml.safe_dump({"config": {"type": eval_type}}))
    (folder / f"{metrics['task_name']}.json").write_text(json.dumps(metrics))
    (folder / "per_sample.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return tmp_path


def line(index: int, score: Any, *, unique: int, extracted: str = "A", **metrics: float) -> dict[str, Any]:
    return {"index": index, "doc_index": index % unique, "repeat": index // unique, "doc": {"q": index % unique},
            "score": score, "metrics": metrics, "correct_answer": "A", "extracted_answer": extracted,
            "convo": [{"role": "user", "content": f"q{index % unique}"},
                      {"role": "assistant", "content": "Answer: A", "usage": {"completion_tokens": 3}}]}


def test_parser_names_scores_as_nvidia_and_reads_samples(tmp_path: Path) -> None:
    metrics = {"en": 1.0, "en:std": 0.0, "en:stderr": 0.0, "de": 0.0, "de:std": 0.0, "de:stderr": 0.0,
               "score": 0.5, "score:std": 0.5, "score:stderr": 0.5, "score_macro": 0.5, "task_name": "mgsm"}
    out = write_run(tmp_path, "mgsm", metrics, [line(0, True, unique=2, en=1.0), line(1, False, unique=2, de=0.0,
                                                                                    extracted="None")])
    parsers = load_parsers(HARNESS)
    results = parsers.parse(out)
    group = results.groups["mgsm"].metrics["score"].scores
    assert (group["micro"].value, group["micro"].stats.stddev, group["macro"].value) == (0.5, 0.5, 0.5)
    assert set(results.tasks) == {"en", "de"}
    assert results.tasks["de"].metrics["score"].scores["micro"].value == 0.0
    records = parsers.parse_samples(out)
    assert [(r.task, r.scores, r.status, r.target, r.prediction) for r in records] == [
        ("en", {"micro": 1.0}, "scored", "A", "Answer: A"), ("de", {"micro": 0.0}, "unscored", "A", "Answer: A")]
    assert records[0].sample_id.startswith("0#") and records[0].input[0].content == "q0"  # type: ignore[union-attr]


def test_parser_with_repeats_and_no_subsets(tmp_path: Path) -> None:
    metrics = {"score": 0.75, "score:std": 0.25, "score:stderr": 0.25, "task_name": "gpqa_diamond", "n_repeats": 2}
    lines = [line(i, float(i != 1), unique=2) for i in range(4)]
    out = write_run(tmp_path, "gpqa_diamond_nemo", metrics, lines)
    parsers = load_parsers(HARNESS)
    results = parsers.parse(out)
    assert set(results.tasks) == {"gpqa_diamond"}
    assert results.tasks["gpqa_diamond"].metrics["score"].scores["micro_avg_of_2"].value == 0.75
    records = parsers.parse_samples(out)
    assert [(r.sample_id.split("#")[0], r.repeat, r.scores["micro_avg_of_2"]) for r in records] == [
        ("0", 0, 1.0), ("1", 0, 0.0), ("0", 1, 1.0), ("1", 1, 1.0)]
    assert records[0].sample_id == records[2].sample_id


def test_parser_without_results_says_where_to_look(tmp_path: Path) -> None:
    with pytest.raises(ResultsParseError, match="no simple-evals results"):
        load_parsers(HARNESS).parse(tmp_path)

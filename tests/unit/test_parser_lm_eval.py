"""lm-eval parser against results files recorded from real lm-eval 0.4.13 runs (tests/fixtures/lm_eval/README.md)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from orchestrator.runtime.harness_parser import load_parsers
from orchestrator.schema.errors import ResultsParseError
from orchestrator.schema.results import EvaluationResult, GroupResult, Score, TaskResult

parse = load_parsers(Path(__file__).resolve().parents[2] / "images" / "lm-eval").parse

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "lm_eval"
CASES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir() and not p.name.startswith("_"))
MODEL_DIR = "local__tiny-arith"
# gsm8k_chat holds two real runs into the same --output_path: --limit 6, then --limit 12.
OLDER = "results_2026-11-27T07-25-48.298356.json"
NEWER = "results_2026-11-27T07-39-34.161282.json"
STRICT = "exact_match__strict-match"
FLEXIBLE = "exact_match__flexible-extract"


def score(part: TaskResult | GroupResult, name: str) -> Score:
    """``part.metrics[name].scores[name]``: lm-eval metrics carry one score named like the metric."""
    assert list(part.metrics[name].scores) == [name]
    return part.metrics[name].scores[name]


def all_scores(result: EvaluationResult) -> list[Score]:
    """Every score of every task and group."""
    parts: list[TaskResult | GroupResult] = [*result.tasks.values(), *result.groups.values()]
    return [s for part in parts for metric in part.metrics.values() for s in metric.scores.values()]


def copy_case(case: str, tmp_path: Path) -> Path:
    out = tmp_path / case
    shutil.copytree(FIXTURES / case, out)
    return out


def error_for(output_dir: Path) -> str:
    with pytest.raises(ResultsParseError) as info:
        parse(output_dir)
    return str(info.value)


def with_results(tmp_path: Path, edit: dict[str, object]) -> Path:
    """A copy of the recorded group_generative results file with top-level sections replaced."""
    source = FIXTURES / "group_generative" / MODEL_DIR
    data = json.loads(next(source.glob("results_*.json")).read_text())
    data.update(edit)
    out = tmp_path / "edited"
    (out / MODEL_DIR).mkdir(parents=True)
    (out / MODEL_DIR / "results_2026-11-27T09-00-00.000001.json").write_text(json.dumps(data))
    return out


@pytest.mark.parametrize("case", CASES)
def test_every_case_parses_into_the_strict_schema(case: str) -> None:
    result = parse(FIXTURES / case)
    assert result.tasks and result.groups
    again = EvaluationResult.model_validate(result.model_dump())
    assert again == result
    values = [s.value for s in all_scores(result)]
    assert values and all(0.0 <= v <= 1.0 for v in values), values


def test_generative_filters_become_metric_suffixes_with_stderr_and_count() -> None:
    result = parse(FIXTURES / "gsm8k_chat")
    task = result.tasks["gsm8k_tiny_a"]
    assert set(task.metrics) == {STRICT, FLEXIBLE}
    assert score(task, STRICT).value == 0.5
    assert score(task, STRICT).stats.stderr == 0.15075567228888181
    assert score(task, FLEXIBLE).value == 0.8333333333333334
    assert score(task, FLEXIBLE).stats.stderr == 0.11236664374387367
    assert score(task, FLEXIBLE).stats.count == 12


def test_none_filter_is_dropped_from_multiple_choice_metric_names() -> None:
    result = parse(FIXTURES / "group_multiple_choice")
    colors, numbers = result.tasks["mc_colors"], result.tasks["mc_numbers"]
    assert set(colors.metrics) == {"acc", "acc_norm"}
    assert (score(colors, "acc").value, score(colors, "acc_norm").value) == (0.125, 0.375)
    assert score(colors, "acc").stats.stderr == 0.125
    assert score(numbers, "acc").value == 0.25
    assert score(numbers, "acc").stats.stderr == 0.16366341767699427
    assert score(numbers, "acc_norm").stats.count == 8


def test_groups_are_split_from_their_tasks() -> None:
    result = parse(FIXTURES / "group_generative")
    assert set(result.tasks) == {"gsm8k_tiny_a", "gsm8k_tiny_b"}
    assert set(result.groups) == {"tiny_arith"}
    group = result.groups["tiny_arith"]
    assert set(group.metrics) == {STRICT, FLEXIBLE}
    assert (score(group, STRICT).value, score(group, FLEXIBLE).value) == (0.4, 0.6)
    assert score(group, STRICT).stats.stderr == 0.15811388300841897
    assert score(group, STRICT).stats.count == 10  # the group's own sample_count: 5 + 5
    assert score(result.tasks["gsm8k_tiny_b"], FLEXIBLE).value == 0.4
    assert score(result.tasks["gsm8k_tiny_b"], FLEXIBLE).stats.count == 5


def test_multiple_choice_group_aggregates() -> None:
    group = parse(FIXTURES / "group_multiple_choice").groups["tiny_mc"]
    assert score(group, "acc").value == 0.1875
    assert score(group, "acc_norm").value == 0.375
    assert score(group, "acc_norm").stats.stderr == 0.1293872923766914
    assert score(group, "acc").stats.count == 16


def test_not_available_stderr_becomes_none() -> None:
    result = parse(FIXTURES / "group_one_sample")
    assert all(s.stats.stderr is None for s in all_scores(result))
    assert score(result.tasks["gsm8k_tiny_a"], STRICT).value == 1.0
    assert score(result.tasks["gsm8k_tiny_b"], STRICT).value == 0.0
    assert score(result.groups["tiny_arith"], FLEXIBLE).value == 0.5
    assert score(result.groups["tiny_arith"], FLEXIBLE).stats.count == 2


def test_single_task_is_also_its_own_group() -> None:
    result = parse(FIXTURES / "gsm8k_chat")
    assert set(result.groups) == {"gsm8k_tiny_a"}
    assert result.groups["gsm8k_tiny_a"].metrics == result.tasks["gsm8k_tiny_a"].metrics


def test_group_without_aggregation_is_neither_task_nor_group() -> None:
    result = parse(FIXTURES / "group_no_aggregate")
    assert set(result.tasks) == {"gsm8k_tiny_a", "gsm8k_tiny_b"}
    assert set(result.groups) == {"gsm8k_tiny_a", "gsm8k_tiny_b"}
    assert score(result.tasks["gsm8k_tiny_a"], STRICT).value == 0.5
    assert score(result.tasks["gsm8k_tiny_a"], FLEXIBLE).stats.stderr == 0.0


def test_results_file_named_after_a_json_output_path() -> None:
    result = parse(FIXTURES / "output_path_json")
    assert score(result.tasks["gsm8k_tiny_a"], FLEXIBLE).value == 1.0
    assert score(result.tasks["gsm8k_tiny_a"], STRICT).stats.count == 2


def test_newest_results_file_wins_by_timestamp_not_mtime(tmp_path: Path) -> None:
    out = copy_case("gsm8k_chat", tmp_path)
    older, newer = out / MODEL_DIR / OLDER, out / MODEL_DIR / NEWER
    os.utime(newer, (1_000_000_000, 1_000_000_000))
    os.utime(older, (2_000_000_000, 2_000_000_000))
    assert score(parse(out).tasks["gsm8k_tiny_a"], STRICT).stats.count == 12
    # Whole-second timestamps (lm-eval's isoformat() drops ".000000") are read too.
    older.rename(out / MODEL_DIR / "results_2026-11-27T08-00-00.json")
    assert score(parse(out).tasks["gsm8k_tiny_a"], FLEXIBLE).value == 0.6666666666666666


def test_without_timestamps_the_newest_mtime_wins(tmp_path: Path) -> None:
    out = copy_case("gsm8k_chat", tmp_path)
    (out / MODEL_DIR / OLDER).rename(out / "results.json")
    (out / MODEL_DIR / NEWER).rename(out / MODEL_DIR / "results.json")
    os.utime(out / "results.json", (2_000_000_000, 2_000_000_000))
    os.utime(out / MODEL_DIR / "results.json", (1_000_000_000, 1_000_000_000))
    assert score(parse(out).tasks["gsm8k_tiny_a"], STRICT).stats.count == 6


def test_non_numeric_entries_are_skipped_and_other_filters_kept(tmp_path: Path) -> None:
    task = {
        "alias": "humaneval",
        "name": "humaneval",
        "sample_len": 4,
        "pass@1,create_test": 0.25,
        "pass@1_stderr,create_test": "N/A",
        "prompt_level_strict_acc,none": 0.5,
        "prompt_level_strict_acc_stderr,none": 0.25,
        "bleu,none": [1, 2],
        "verdict,none": "good",
        "flag,none": True,
    }
    n_samples = {"humaneval": {"original": 164, "effective": 4}}
    out = with_results(tmp_path, {"results": {"humaneval": task}, "groups": None, "n-samples": n_samples})
    result = parse(out)
    metrics = result.tasks["humaneval"].metrics
    assert set(metrics) == {"pass@1__create_test", "prompt_level_strict_acc"}
    assert score(result.tasks["humaneval"], "pass@1__create_test").stats.stderr is None
    assert score(result.tasks["humaneval"], "prompt_level_strict_acc").stats.stderr == 0.25
    assert score(result.tasks["humaneval"], "prompt_level_strict_acc").stats.count == 4


def test_missing_output_dir(tmp_path: Path) -> None:
    assert "does not exist" in error_for(tmp_path / "nowhere")


def test_empty_dir_names_the_directory(tmp_path: Path) -> None:
    message = error_for(tmp_path)
    assert f"no lm-eval results file under {tmp_path}" in message
    assert "results_<timestamp>.json" in message


def test_samples_files_alone_are_not_results(tmp_path: Path) -> None:
    samples = next((FIXTURES / "gsm8k_chat" / MODEL_DIR).glob("samples_*.jsonl"))
    (tmp_path / MODEL_DIR).mkdir()
    shutil.copy(samples, tmp_path / MODEL_DIR)
    assert "no lm-eval results file" in error_for(tmp_path)


def test_truncated_json_names_the_file(tmp_path: Path) -> None:
    out = copy_case("gsm8k_chat", tmp_path)
    newest = out / MODEL_DIR / NEWER
    newest.write_text(newest.read_text()[:500])
    message = error_for(out)
    assert str(newest) in message and "cannot read lm-eval results" in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[1, 2]", "expected a JSON object, found list"),
        ('{"groups": {}}', "the 'results' section is missing or not a JSON object"),
        ('{"results": [1]}', "the 'results' section is missing or not a JSON object"),
        ('{"results": {}}', "the 'results' section is empty"),
        ('{"results": {"t": {"acc,none": 1.0}}, "groups": 3}', "the 'groups' section"),
    ],
)
def test_malformed_results(tmp_path: Path, content: str, expected: str) -> None:
    (tmp_path / "results_2026-11-27T07-25-48.298356.json").write_text(content)
    assert expected in error_for(tmp_path)

"""VLMEvalKit parser against score files written by the harness's own scoring code (tests/fixtures/vlmevalkit)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.runtime.harness_parser import load_parsers
from orchestrator.schema.errors import ResultsParseError
from orchestrator.schema.results import EvaluationResult, GroupResult, Score, TaskResult

parse = load_parsers(Path(__file__).resolve().parents[2] / "images" / "vlmevalkit").parse

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "vlmevalkit"
CASES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
MATHVISTA_FILE = "Phi-3.5-Vision_MathVista_MINI_gpt-4o_score.csv"


def accuracy(part: TaskResult | GroupResult, score: str = "accuracy", metric: str = "accuracy") -> Score:
    """``part.metrics[metric].scores[score]`` of a task or group."""
    return part.metrics[metric].scores[score]


def all_scores(result: EvaluationResult) -> Iterator[Score]:
    groups = list(result.groups.values())
    while groups:
        group = groups.pop()
        groups.extend((group.groups or {}).values())
        for metric in group.metrics.values():
            yield from metric.scores.values()
    for task in result.tasks.values():
        for metric in task.metrics.values():
            yield from metric.scores.values()


def copy_case(case: str, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(FIXTURES / case, out, dirs_exist_ok=True)
    return out


def error_for(output_dir: Path) -> str:
    with pytest.raises(ResultsParseError) as info:
        parse(output_dir)
    return str(info.value)


@pytest.mark.parametrize("case", CASES)
def test_every_score_is_a_ratio(case: str) -> None:
    scores = list(all_scores(parse(FIXTURES / case)))
    assert scores
    assert all(0.0 <= s.value <= 1.0 for s in scores), [s.value for s in scores]


def test_ocrbench_nvidia_sum_count_form() -> None:
    result = parse(FIXTURES / "ocrbench")
    group = result.groups["ocrbench"]
    overall = accuracy(group)
    assert overall.value == pytest.approx(10 / 15)
    assert (overall.stats.count, overall.stats.sum) == (15, 10)
    assert group.groups is not None
    recognition = accuracy(group.groups["text-recognition"])
    assert recognition.value == pytest.approx(4 / 6)
    assert (recognition.stats.count, recognition.stats.sum) == (6, 4)
    # Categories the (limited) run had no samples of are left out.
    assert set(result.tasks) == {
        "regular-text-recognition",
        "irregular-text-recognition",
        "handwriting-recognition",
        "scene-text-centric-vqa",
        "doc-oriented-vqa",
        "key-information-extraction",
        "handwritten-mathematical-expression-recognition",
    }
    regular = accuracy(result.tasks["regular-text-recognition"])
    assert regular.value == pytest.approx(2 / 3)
    assert (regular.stats.count, regular.stats.sum) == (3, 2)
    assert accuracy(result.tasks["key-information-extraction"]).value == 1.0
    assert accuracy(result.tasks["handwritten-mathematical-expression-recognition"]).value == 0.5


def test_ocrbench_upstream_plain_counts_use_the_benchmark_composition() -> None:
    result = parse(FIXTURES / "ocrbench_upstream")
    overall = accuracy(result.groups["ocrbench"])
    assert overall.value == pytest.approx(10 / 1000)
    assert (overall.stats.count, overall.stats.sum) == (1000, 10)
    expected = {
        "text-recognition": 4 / 300,
        "scene-text-centric-vqa": 2 / 200,
        "doc-oriented-vqa": 1 / 200,
        "key-information-extraction": 2 / 200,
        "handwritten-mathematical-expression-recognition": 1 / 100,
    }
    assert {name: accuracy(task).value for name, task in result.tasks.items()} == pytest.approx(expected)


def test_chartqa_percentages_become_ratios() -> None:
    result = parse(FIXTURES / "chartqa")
    overall = accuracy(result.groups["chartqa"])
    assert overall.value == pytest.approx(6 / 7)
    assert overall.stats.count is None
    assert {name: accuracy(task).value for name, task in result.tasks.items()} == pytest.approx(
        {"test-human": 2 / 3, "test-augmented": 1.0}
    )


@pytest.mark.parametrize("case", ["ai2d", "ai2d_json"])
def test_ai2d_acc_table_csv_and_json_records(case: str) -> None:
    result = parse(FIXTURES / case)
    group = result.groups["ai2d"]
    assert set(group.metrics["accuracy"].scores) == {"accuracy"}  # no splits: no per-split scores
    assert accuracy(group).value == pytest.approx(4 / 6)
    assert {name: accuracy(task).value for name, task in result.tasks.items()} == pytest.approx(
        {"atomstructure": 0.5, "eclipses": 1.0, "foodchainswebs": 2 / 3}
    )


def test_mmmu_headline_is_the_validation_split() -> None:
    result = parse(FIXTURES / "mmmu")
    group = result.groups["mmmu"].metrics["accuracy"].scores
    assert {name: s.value for name, s in group.items()} == pytest.approx({"accuracy": 0.6, "val": 0.6, "dev": 2 / 3})
    assert set(result.tasks) == {"art-design", "business", "science", "accounting", "art-theory", "biology"}
    art = result.tasks["art-design"].metrics["accuracy"].scores
    assert {name: s.value for name, s in art.items()} == {"accuracy": 0.0, "dev": 1.0, "val": 0.0}
    # Biology has no dev questions: the empty cell is skipped, not read as 0.
    biology = result.tasks["biology"].metrics["accuracy"].scores
    assert {name: s.value for name, s in biology.items()} == {"accuracy": 1.0, "val": 1.0}


def test_mathvista_accuracy_and_prefetch_rate_with_counts() -> None:
    result = parse(FIXTURES / "mathvista")
    group = result.groups["mathvista"]
    overall = accuracy(group)
    assert overall.value == pytest.approx(4 / 6)
    assert (overall.stats.count, overall.stats.sum) == (6, 4)
    prefetch = accuracy(group, "prefetch_rate", "prefetch_rate")
    assert prefetch.value == pytest.approx(0.5)
    assert (prefetch.stats.count, prefetch.stats.sum) == (6, 3)
    assert len(result.tasks) == 9  # 4 tasks and 5 skills
    arithmetic = accuracy(result.tasks["arithmetic-reasoning"])
    assert arithmetic.value == pytest.approx(1 / 3)
    assert (arithmetic.stats.count, arithmetic.stats.sum) == (3, 1)
    assert accuracy(result.tasks["textbook-question-answering"]).value == pytest.approx(1.0)
    assert accuracy(result.tasks["textbook-question-answering"], "prefetch_rate", "prefetch_rate").value == 0.0


def test_ocr_reasoning_reasoning_rows_become_a_metric_not_tasks() -> None:
    result = parse(FIXTURES / "ocr_reasoning")
    group = result.groups["ocr_reasoning"]
    overall = accuracy(group)
    assert overall.value == pytest.approx(3 / 5)
    assert (overall.stats.count, overall.stats.sum) == (5, 3)
    reasoning = accuracy(group, "reasoning_score", "reasoning_score")
    assert reasoning.value == pytest.approx(0.7)
    assert (reasoning.stats.count, reasoning.stats.sum) == (5, None)
    assert set(result.tasks) == {"logical-reasoning", "numerical-analysis-reasoning", "spatial-reasoning"}
    logical = result.tasks["logical-reasoning"]
    assert accuracy(logical).value == pytest.approx(0.5)
    assert accuracy(logical, "reasoning_score", "reasoning_score").value == pytest.approx(0.55)


def test_slidevqa_anls_exact_match_f1() -> None:
    result = parse(FIXTURES / "slidevqa")
    group = result.groups["slidevqa"]
    values = {name: metric.scores[name].value for name, metric in group.metrics.items()}
    assert values == pytest.approx({"anls": (1 + 0 + 8 / 12 + 1) / 4, "exact_match": 0.5, "f1": 0.7})
    assert accuracy(group, "anls", "anls").stats.count == 4
    assert result.tasks == {}


def test_newest_score_file_wins(tmp_path: Path) -> None:
    out = copy_case("chartqa", tmp_path)
    fixture = next(out.rglob("*_acc.csv"))
    other_run = fixture.parent.parent / "T20251201_G00000000"
    other_run.mkdir()
    other = other_run / fixture.name
    other.write_text('"test_augmented","test_human","Overall"\n"10.0","20.0","15.0"\n')
    os.utime(other, (1_000_000, 1_000_000))
    assert accuracy(parse(out).groups["chartqa"]).value == pytest.approx(6 / 7)
    os.utime(fixture, (500_000, 500_000))
    assert accuracy(parse(out).groups["chartqa"]).value == pytest.approx(0.15)


def test_symlinks_vlmevalkit_adds_count_once_and_broken_ones_are_ignored(tmp_path: Path) -> None:
    out = copy_case("chartqa", tmp_path)
    fixture = next(out.rglob("*_acc.csv"))
    (fixture.parent.parent / fixture.name).symlink_to(fixture)  # as vlmeval.run links into <model>/
    (out / "elsewhere_OCRBench_score.json").symlink_to("/nonexistent/run/elsewhere_OCRBench_score.json")
    assert accuracy(parse(out).groups["chartqa"]).value == pytest.approx(6 / 7)
    fixture.unlink()
    assert "no VLMEvalKit score file" in error_for(out)


def test_judge_name_with_a_slash_makes_a_subdirectory(tmp_path: Path) -> None:
    run = tmp_path / "out" / "Phi-3.5-Vision" / "T20260101_G1a2b3c4d" / "Phi-3.5-Vision_MathVista_MINI_meta"
    run.mkdir(parents=True)
    source = next((FIXTURES / "mathvista").rglob(MATHVISTA_FILE))
    shutil.copy(source, run / "llama-3.1-70b-instruct_score.csv")
    assert accuracy(parse(tmp_path / "out").groups["mathvista"]).value == pytest.approx(4 / 6)


def test_dataset_is_read_after_the_model_name(tmp_path: Path) -> None:
    model = tmp_path / "out" / "AI2D_TEST_NO_MASK_ft"
    model.mkdir(parents=True)
    shutil.copy(next((FIXTURES / "chartqa").rglob("*_acc.csv")), model / "AI2D_TEST_NO_MASK_ft_ChartQA_TEST_acc.csv")
    assert set(parse(tmp_path / "out").groups) == {"chartqa"}


def test_empty_or_missing_directory(tmp_path: Path) -> None:
    message = error_for(tmp_path)
    assert f"no VLMEvalKit score file under {tmp_path}" in message
    assert "_score.json" in message
    assert "does not exist" in error_for(tmp_path / "missing")


def test_two_datasets_are_an_error(tmp_path: Path) -> None:
    copy_case("ocrbench", tmp_path)
    out = copy_case("chartqa", tmp_path)
    message = error_for(out)
    assert "several datasets" in message
    assert "OCRBench" in message and "ChartQA_TEST" in message
    assert "one dataset per output directory" in message


def test_unsupported_dataset_lists_supported_ones(tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "m_MMMU_Pro_10c_acc.csv").write_text('"split","Overall"\n"none","0.5"\n')
    message = error_for(tmp_path)
    assert "unsupported VLMEvalKit dataset" in message and "m_MMMU_Pro_10c_acc.csv" in message
    assert "OCRBench" in message and "MMMU_DEV_VAL" in message and "MathVista_MINI" in message


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("m_OCRBench_score.json", "{not json", "cannot read VLMEvalKit score file"),
        ("m_OCRBench_score.json", '{"Final Score": {"sum": 0, "count": 0}}', "counts no samples"),
        ("m_ChartQA_TEST_acc.csv", '"split","acc"\n"none","50.0"\n', "'Overall'"),
        ("m_MMMU_DEV_VAL_acc.csv", '"split","Overall"\n"dev","0.5"\n"test","0.4"\n', "no 'validation'"),
        ("m_MathVista_MINI_gpt-4o_score.csv", '"Task&Skill","tot"\n"Overall","x"\n', "'tot' holds 'x', not a number"),
    ],
)
def test_malformed_score_files_name_the_file(tmp_path: Path, name: str, content: str, expected: str) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / name).write_text(content)
    message = error_for(tmp_path)
    assert name in message
    assert expected in message

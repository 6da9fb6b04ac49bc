"""`evals compare` through the CLI on synthetic runs: the three outputs, refusals, partial runs, bad files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from orchestrator.host.cli import app as cli
from orchestrator.host.records import store
from orchestrator.schema.samples import SAMPLES_FILE, SampleRecord, dump_line
from tests.unit import records as run_records
from tests.unit.sample_runs import records, write_run

WIDE = {"COLUMNS": "250"}


def evals(*args: str) -> tuple[int, str, str]:
    """`evals ARGS` through typer's runner: exit code, stdout, stderr (an EvalsError keeps its own exit code)."""
    result = CliRunner().invoke(cli.full_app(), list(args), env=WIDE)
    code = result.exit_code
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        code = getattr(result.exception, "exit_code", -1)
    return code, result.stdout, result.stderr + (str(result.exception) if result.exception and code != 0 else "")


def error_line(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`evals ARGS` as the console script runs it: the exit code, stdout and the one-line error."""
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path]:
    """A (baseline) and B (candidate): gsm8k 0/1 with 3 errors in B; summary continuous; B a newer harness."""
    rng = np.random.default_rng(0)
    a = (rng.random(200) < 0.6).astype(float)
    b = np.where(rng.random(200) < 0.15, 1 - a, a)
    statuses_b: list[Any] = ["scored"] * 200
    statuses_b[5:8] = ["error"] * 3
    f1_a, f1_b = rng.random(150), rng.random(150)
    run_a = write_run(tmp_path / "A", records("gsm8k", a.tolist(), metric="exact_match")
                      + records("summary", f1_a.tolist(), metric="f1"))
    run_b = write_run(tmp_path / "B", records("gsm8k", b.tolist(), metric="exact_match", statuses=statuses_b)
                      + records("summary", f1_b.tolist(), metric="f1"), harness_version="0.4.14")
    return run_a, run_b


def report(*args: str) -> dict[str, Any]:
    code, out, err = evals("compare", *args, "--json")
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


def test_json_has_the_paired_numbers_and_counts(runs: tuple[Path, Path]) -> None:
    data = report(str(runs[0]), str(runs[1]))
    rows = {row["task"]: row for row in data["comparisons"][0]["rows"]}
    gsm8k = rows["gsm8k"]
    assert (gsm8k["matched"], gsm8k["n"], gsm8k["errors_baseline"], gsm8k["errors_candidate"]) == (200, 197, 0, 3)
    assert (gsm8k["only_baseline"], gsm8k["only_candidate"], gsm8k["missing"]) == (0, 0, 0)
    lines_a = [json.loads(x) for x in (runs[0] / SAMPLES_FILE).read_text().splitlines()][:200]
    lines_b = [json.loads(x) for x in (runs[1] / SAMPLES_FILE).read_text().splitlines()][:200]
    kept = [(x["scores"]["exact_match"], y["scores"]["exact_match"]) for x, y in zip(lines_a, lines_b, strict=True)
            if y["status"] != "error"]
    assert gsm8k["baseline_mean"] == pytest.approx(np.mean([x for x, _ in kept]))  # errors left out of both means
    assert gsm8k["candidate_mean"] == pytest.approx(np.mean([y for _, y in kept]))
    assert gsm8k["difference"] == pytest.approx(gsm8k["candidate_mean"] - gsm8k["baseline_mean"])
    assert gsm8k["ci_lower"] < gsm8k["difference"] < gsm8k["ci_upper"]
    assert (gsm8k["test"], rows["summary"]["test"]) == ("mcnemar", "permutation")
    p = sorted([gsm8k["p_value"], rows["summary"]["p_value"]])
    assert sorted([gsm8k["p_holm"], rows["summary"]["p_holm"]]) == pytest.approx([min(1, 2 * p[0]),
                                                                                  max(min(1, 2 * p[0]), p[1])])
    assert data["runs"][0]["label"] == "A" and data["runs"][1]["source"] == str(runs[1])
    assert data["method"]["resamples"] == 10_000


def test_table_shows_every_row_and_warns_of_another_harness_version(runs: tuple[Path, Path]) -> None:
    code, out, err = evals("compare", str(runs[0]), str(runs[1]))
    assert code == 0, err
    assert "gsm8k" in out and "exact_match" in out and "summary" in out and "McNemar" in out and "perm." in out
    assert "197" in out and "0 / 3" in out  # n, errors A / B
    assert "different harness versions: lm-eval 0.4.13 (A) and lm-eval 0.4.14 (B)" in err


def test_markdown_is_a_table_for_a_pull_request(runs: tuple[Path, Path]) -> None:
    code, out, _ = evals("compare", str(runs[0]), str(runs[1]), "--markdown")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("### evals compare: A (baseline)")
    header = next(i for i, line in enumerate(lines) if line.startswith("| task | metric | A | B | B - A |"))
    assert lines[header + 1].startswith("| --- | --- | --: |")
    assert lines[header + 2].startswith("| gsm8k | exact\\_match | ")
    assert lines[-1].startswith("> **warning:** different harness versions")


def test_a_run_compared_with_itself_differs_by_exactly_zero(runs: tuple[Path, Path]) -> None:
    data = report(str(runs[1]), str(runs[1]))
    for row in data["comparisons"][0]["rows"]:
        assert (row["difference"], row["ci_lower"], row["ci_upper"], row["p_value"], row["p_holm"]) == (0, 0, 0, 1, 1)
        assert row["detectable"] is None  # no spread of the differences to estimate an MDE from (not 0)
        assert row["baseline_mean"] == row["candidate_mean"]
    assert data["warnings"] == []


def test_flips_list_changed_samples_whole_in_json_and_cut_in_the_table(tmp_path: Path) -> None:
    long_answer = "The answer, after a long chain of thought that goes on and on: " + "x" * 500
    a = write_run(tmp_path / "A", records("t", [1, 0, 1, 0], predictions=["a0", "a1", "a2", long_answer]))
    b = write_run(tmp_path / "B", records("t", [1, 1, 0, 0], predictions=["b0", "b1", "b2", "b3"]))
    flips = report(str(a), str(b), "--flips")["comparisons"][0]["flips"]
    assert [(f["sample_id"].split("#")[0], f["change"]) for f in flips] == [("1", "gained"), ("2", "lost")]
    assert flips[0]["baseline_prediction"] == "a1" and flips[0]["candidate_prediction"] == "b1"
    assert flips[0]["input"] == "Question 1: what is 1 + 1?"
    code, out, _ = evals("compare", str(a), str(b), "--flips")
    assert code == 0 and "2 flips of 0/1 scores" in out and "gained" in out
    c = write_run(tmp_path / "C", records("t", [1, 0, 1, 1], predictions=["c0", "c1", "c2", "c3"]))
    code, out, _ = evals("compare", str(a), str(c), "--flips")
    assert "The answer, after a long chain of thoug…" in out and "x" * 50 not in out
    assert long_answer in json.dumps(report(str(a), str(c), "--flips"))


def test_another_dataset_version_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_run(tmp_path / "A", records("gsm8k", [1, 0, 1]))
    b = write_run(tmp_path / "B", records("gsm8k", [1, 0]) + records("gsm8k", [1], first=2, dataset="v2"))
    code, out, err = error_line(capsys, "compare", str(a), str(b))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "task 'gsm8k': sample '2' is '2#" in err and "another version of the dataset" in err
    assert "--allow-partial" in err


def test_disjoint_samples_and_tasks_are_refused_unless_allow_partial(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    a = write_run(tmp_path / "A", records("gsm8k", [1, 0, 1, 1]) + records("mmlu", [1]))
    b = write_run(tmp_path / "B", records("gsm8k", [1, 1, 1]) + records("gsm8k", [0], first=10))
    code, _, err = error_line(capsys, "compare", str(a), str(b))
    assert code == 2
    assert "task 'gsm8k': 1 samples only in A, 1 only in B" in err and "(and 1 more)" in err
    data = report(str(a), str(b), "--allow-partial")
    rows = {row["task"]: row for row in data["comparisons"][0]["rows"]}
    assert (rows["gsm8k"]["matched"], rows["gsm8k"]["only_baseline"], rows["gsm8k"]["only_candidate"]) == (3, 1, 1)
    assert (rows["mmlu"]["n"], rows["mmlu"]["only_baseline"], rows["mmlu"]["difference"]) == (0, 1, None)
    assert "partial comparison: task 'mmlu' is only in A" in data["warnings"]


@pytest.mark.parametrize(("line", "message"), [
    ('{"task":"t","sample_id":"1#a","input":"x","status":"scor', "truncated record"),
    ('{"task":"t","sample_id":"1#a","input":"x","status":"scored","scores":{"acc":NaN}}', "not a JSON record"),
    ('{"task":"t","sample_id":"1#a","input":"x","status":"scored","scores":{"acc":"1"}}', "scores.acc"),
    ('{"task":"t","sample_id":"1#a","input":"x","status":"done"}', "status"),
    ('{"task":"t","sample_id":"1#a","input":"x","status":"scored","score":{}}', "unknown key 'score'"),
    ('["not", "an", "object"]', "not a sample record"),
    ('', "not a JSON record"),
])
def test_a_corrupt_line_names_file_and_line_exit_2_nothing_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, message: str) -> None:
    a = write_run(tmp_path / "A", records("t", [1, 0, 1]))
    b = write_run(tmp_path / "B", records("t", [1, 0, 1]))
    text = (b / SAMPLES_FILE).read_text()
    (b / SAMPLES_FILE).write_text(text + line + ("" if "truncated" in message else "\n") + dump_line(
        SampleRecord(task="t", sample_id="9#b", input="y", status="scored")))
    if "truncated" in message:  # a file cut in the middle of its last line
        (b / SAMPLES_FILE).write_text(text + line)
    code, out, err = error_line(capsys, "compare", str(a), str(b))
    assert (code, out) == (2, "")
    assert f"{b / SAMPLES_FILE}:4: " in err and message in err, err
    assert len(err.strip().splitlines()) == 1


def test_a_sample_twice_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_run(tmp_path / "A", records("t", [1, 0]) + records("t", [1]))
    code, _, err = error_line(capsys, "compare", str(a), str(a))
    assert code == 2 and f"{a / SAMPLES_FILE}:3: sample '0#" in err and f"first at {a / SAMPLES_FILE}:1" in err


def test_errors_are_left_out_of_the_means_and_counted(tmp_path: Path) -> None:
    a = records("t", [1, 1, 0, 0], statuses=["scored", "error", "scored", "scored"])
    b = records("t", [1, 0, 1, 0], statuses=["scored", "scored", "scored", "error"])
    b[3] = b[3].model_copy(update={"scores": {"acc": 0.0}})  # an error the harness scored 0 is still an error
    row = report(str(write_run(tmp_path / "A", a)), str(write_run(tmp_path / "B", b)))["comparisons"][0]["rows"][0]
    assert (row["n"], row["errors_baseline"], row["errors_candidate"], row["missing"]) == (2, 1, 1, 0)
    assert (row["baseline_mean"], row["candidate_mean"], row["difference"]) == (0.5, 1.0, 0.5)


def test_three_runs_compare_the_first_with_each_and_holm_spans_them_all(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    paths = [write_run(tmp_path / name, records("t", (rng.random(300) < p).astype(float).tolist()))
             for name, p in (("A", 0.5), ("B", 0.55), ("C", 0.6))]
    data = report(*map(str, paths))
    assert [(c["baseline"], c["candidate"]) for c in data["comparisons"]] == [("A", "B"), ("A", "C")]
    p = [c["rows"][0]["p_value"] for c in data["comparisons"]]
    holm = [c["rows"][0]["p_holm"] for c in data["comparisons"]]
    assert min(holm) == pytest.approx(min(1, 2 * min(p)))


def test_runs_named_by_results_file_parent_directory_or_run_id(tmp_path: Path) -> None:
    record = run_records.run_record([run_records.task(0, "gsm8k", output_root=str(tmp_path / "run")),
                                     run_records.task(1, "mmlu", output_root=str(tmp_path / "run"))])
    write_run(Path(record.tasks[0].output_dir), records("gsm8k", [1, 0, 1]))
    write_run(Path(record.tasks[1].output_dir), records("mmlu", [0, 0, 1]))
    store.create(record)
    by_id = report(record.id, str(tmp_path / "run"))
    assert by_id["runs"][0]["tasks"] == ["gsm8k", "mmlu"] == by_id["runs"][1]["tasks"]
    by_file = report(str(Path(record.tasks[0].output_dir) / "results.yml"), str(tmp_path / "run" / "lm-eval-gsm8k"))
    assert by_file["runs"][0]["tasks"] == ["gsm8k"]


def test_bad_arguments_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_run(tmp_path / "A", records("t", [1]))
    assert error_line(capsys, "compare", str(a))[0] == 2
    code, _, err = error_line(capsys, "compare", str(a), str(tmp_path / "nowhere"))
    assert code == 2 and "is no output directory, results file or run id" in err
    code, _, err = error_line(capsys, "compare", str(a), str(a), "--json", "--markdown")
    assert code == 2 and "--json and --markdown" in err
    (tmp_path / "empty").mkdir()
    code, _, err = error_line(capsys, "compare", str(a), str(tmp_path / "empty"))
    assert code == 2 and "holds no samples.jsonl" in err
    write_run(tmp_path / "old", [], results=True).joinpath(SAMPLES_FILE).unlink()
    code, _, err = error_line(capsys, "compare", str(a), str(tmp_path / "old"))
    assert code == 2 and "has no samples.jsonl" in err

"""samples.jsonl, results.yml's sample counts and ci95, and max_error_fraction, through run_eval (fake harness)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.runtime import cli as runtime_cli
from orchestrator.runtime.harness_parser import load_parsers
from orchestrator.runtime.intervals import clopper_pearson
from orchestrator.runtime.samples import check_errors, join_requests, with_sample_stats, write_samples
from orchestrator.schema.errors import SampleErrorLimitError
from orchestrator.schema.results import EvaluationResult, MetricResult, ResultsFile, Score, TaskResult
from orchestrator.schema.samples import SAMPLES_FILE, Message, SampleRecord, prompt_key
from tests.unit.test_cli import FAKE, REPO, URL, run_eval

FAKE_PARSERS = load_parsers(FAKE.parent)
parse_samples = FAKE_PARSERS.parse_samples

STRICT = "exact_match__strict-match"


def results_of(out: Path) -> ResultsFile:
    return ResultsFile.model_validate(yaml.safe_load((out / "results.yml").read_text()))


def lines_of(out: Path) -> list[SampleRecord]:
    return [SampleRecord.model_validate_json(line) for line in (out / SAMPLES_FILE).read_text().splitlines()]


def test_run_writes_samples_jsonl_counts_and_ci95(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_eval(out, "--overrides", "config.params.limit_samples=12")
    assert result.returncode == 0, result.stderr
    records = lines_of(out)
    # Ordered by task, then document (10 and 11 after 9), then repeat.
    assert [r.sample_id.split("#")[0] for r in records] == [str(i) for i in range(12)]
    assert [r.status for r in records] == ["scored"] * 11 + ["unscored"]
    assert [r.scores[STRICT] for r in records] == [1.0] * 7 + [0.0] * 5
    assert records[11].prediction == "I do not know." and records[0].input == "Question: What is 0 plus 1?"
    task = results_of(out).results.tasks["gsm8k"]
    assert task.samples is not None and task.samples.model_dump() == {"scored": 11, "unscored": 1, "error": 0}
    score = task.metrics[STRICT].scores[STRICT]
    assert score.value == pytest.approx(7 / 12)
    assert score.stats.ci95 is not None and score.stats.ci95.method == "exact_binomial"
    assert (score.stats.ci95.lower, score.stats.ci95.upper) == pytest.approx(clopper_pearson(7, 12), abs=1e-12)
    assert "warning" not in result.stderr
    # results.yml as written: the counts and interval under the task, next to the harness's stderr.
    raw = yaml.safe_load((out / "results.yml").read_text())["results"]["tasks"]["gsm8k"]
    assert raw["samples"] == {"scored": 11, "unscored": 1, "error": 0}
    assert set(raw["metrics"][STRICT]["scores"][STRICT]["stats"]["ci95"]) == {"lower", "upper", "method"}
    assert not list(out.glob(f".{SAMPLES_FILE}.*"))  # no temporary file left behind


def test_no_per_sample_output_warns_and_writes_results_as_before(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_eval(out).returncode == 0
    assert (out / SAMPLES_FILE).exists()
    # The same output directory again, by a run that logs no samples: the old samples.jsonl must not stay.
    # (The fake harness writes one fixed timestamp; lm-eval's next run would have its own.)
    for harness_file in out.rglob("samples_*.jsonl"):
        harness_file.unlink()
    result = run_eval(out, "--overrides", "config.params.extra.samples=false")
    assert result.returncode == 0, result.stderr
    assert not (out / SAMPLES_FILE).exists()
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "wrote no per-sample output" in warnings[0] and SAMPLES_FILE in warnings[0]
    task = results_of(out).results.tasks["gsm8k"]
    assert task.samples is None
    assert task.metrics[STRICT].scores[STRICT].stats.ci95 is None


def failing_parser(output_dir: Path) -> list[SampleRecord]:
    """lm-eval's records with the first two marked as endpoint errors, as the proxy's records will mark them."""
    return [record.model_copy(update={"status": "error", "prediction": None, "error": "HTTP 500 after 5 attempts"})
            if index < 2 else record for index, record in enumerate(parse_samples(output_dir))]


def run_in_process(out: Path, *overrides: str) -> int:
    return runtime_cli.main(["run_eval", "--eval_type", "gsm8k", "--model_id", "m", "--model_url", URL,
                             "--model_type", "chat", "--output_dir", str(out),
                             "--overrides", ",".join(["config.params.limit_samples=10", *overrides])],
                            framework=FAKE)


def test_errors_over_max_error_fraction_fail_the_run_after_writing_both_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys.modules[FAKE_PARSERS.module], "parse_samples", failing_parser)
    monkeypatch.chdir(REPO)  # the fake framework names its script relative to the repository
    out = tmp_path / "out"
    assert run_in_process(out) == 1
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "2 of 10 samples of task gsm8k ended in an error" in message
    assert "max_error_fraction=0 " in message and str(out / SAMPLES_FILE) in message and "status error" in message
    assert [r.status for r in lines_of(out)][:3] == ["error", "error", "scored"]
    task = results_of(out).results.tasks["gsm8k"]
    assert task.samples is not None and task.samples.model_dump() == {"scored": 7, "unscored": 1, "error": 2}
    # lm-eval counted the two as wrong: its value is no mean over the non-error samples, so no interval.
    assert task.metrics[STRICT].scores[STRICT].stats.ci95 is None


def test_errors_within_max_error_fraction_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[FAKE_PARSERS.module], "parse_samples", failing_parser)
    monkeypatch.chdir(REPO)
    assert run_in_process(tmp_path / "out", "config.params.max_error_fraction=0.2") == 0


def record(task: str, doc: int, *, status: str = "scored", repeat: int = 0, **scores: float) -> SampleRecord:
    return SampleRecord.model_validate({"task": task, "sample_id": f"{doc}#abc", "repeat": repeat, "input": "q",
                                        "status": status, "scores": scores})


@pytest.mark.parametrize(("errors", "total", "fraction", "fails"), [
    (0, 10, 0.0, False), (1, 10, 0.0, True), (1, 10, 0.1, False), (2, 10, 0.1, True), (10, 10, 1.0, False)])
def test_check_errors_is_errors_over_total_per_task(errors: int, total: int, fraction: float, fails: bool) -> None:
    records = [record("a", i, status="error" if i < errors else "scored") for i in range(total)]
    records += [record("b", i) for i in range(50)]  # another task's clean samples do not dilute task a's errors
    if fails:
        with pytest.raises(SampleErrorLimitError, match=rf"^{errors} of {total} samples of task a ended in an error"):
            check_errors(records, max_fraction=fraction, path=Path("out/samples.jsonl"))
    else:
        check_errors(records, max_fraction=fraction, path=Path("out/samples.jsonl"))


def test_check_errors_names_every_task_over_the_limit() -> None:
    records = [record("b", 0, status="error"), record("a", 0, status="error"), record("a", 1)]
    with pytest.raises(SampleErrorLimitError) as info:
        check_errors(records, max_fraction=0.0, path=Path("out/samples.jsonl"))
    assert str(info.value).startswith("1 of 2 samples of task a; 1 of 1 samples of task b ended in an error")
    assert info.value.exit_code == 1


def results_with(task: str, **values: float) -> EvaluationResult:
    metrics = {name: MetricResult(scores={name: Score(value=value)}) for name, value in values.items()}
    return EvaluationResult(tasks={task: TaskResult(metrics=metrics)})


def test_ci95_only_for_scores_that_are_means_over_non_error_samples() -> None:
    records = [record("t", 0, acc=1.0, bleu=30.0), record("t", 1, acc=0.0, bleu=10.0),
               record("t", 2, acc=1.0, bleu=20.0), record("t", 3, status="error", acc=0.0)]
    stats = with_sample_stats(results_with("t", acc=2 / 3, bleu=25.0, other=0.5), records).tasks["t"]
    acc = stats.metrics["acc"].scores["acc"].stats.ci95
    assert acc is not None and (acc.lower, acc.upper) == pytest.approx(clopper_pearson(2, 3), abs=1e-12)
    assert stats.metrics["bleu"].scores["bleu"].stats.ci95 is None  # corpus-level 25 is not the mean 20
    assert stats.metrics["other"].scores["other"].stats.ci95 is None  # no sample has it
    assert stats.samples is not None and stats.samples.model_dump() == {"scored": 3, "unscored": 0, "error": 1}


def test_repeats_are_averaged_per_sample_before_the_interval() -> None:
    records = [record("t", doc, repeat=rep, acc=float(doc % 2 == 0 or rep == 0))
               for doc in range(20) for rep in range(2)]
    mean = (10 * 1.0 + 10 * 0.5) / 20
    interval = with_sample_stats(results_with("t", acc=mean), records).tasks["t"].metrics["acc"].scores["acc"]
    assert interval.stats.ci95 is not None and interval.stats.ci95.method == "bootstrap"  # means of 1 and 0.5
    assert interval.stats.ci95.lower < mean < interval.stats.ci95.upper


def test_tasks_without_records_are_left_as_they_are() -> None:
    results = results_with("t", acc=0.5)
    assert with_sample_stats(results, [record("other", 0, acc=1.0)]) == results


def test_write_samples_is_sorted_and_replaces_the_file(tmp_path: Path) -> None:
    records = [record("b", 0), record("a", 10), record("a", 2, repeat=1), record("a", 2)]
    (tmp_path / SAMPLES_FILE).write_text("old\n")
    write_samples(tmp_path, records)
    keys = [(d["task"], d["sample_id"], d["repeat"])
            for d in map(json.loads, (tmp_path / SAMPLES_FILE).read_text().splitlines())]
    assert keys == [("a", "2#abc", 0), ("a", "2#abc", 1), ("a", "10#abc", 0), ("b", "0#abc", 0)]
    write_samples(tmp_path, [])
    assert not (tmp_path / SAMPLES_FILE).exists()


def request_line(id_: str, prompt: object, *, status: int = 200, error: str | None = None, role: str = "model") -> str:
    return json.dumps({"id": id_, "role": role, "prompt_key": prompt_key(prompt), "path": "/v1/chat/completions",
                       "status": status, "latency_ms": 1.0, "error": error}) + "\n"


def test_records_join_their_requests_by_the_prompt_as_sent_and_all_failed_is_an_error(tmp_path: Path) -> None:
    chat = [{"role": "user", "content": "What is 1 + 1?"}]
    ok = SampleRecord(task="t", sample_id="0#a", input=[Message(role="user", content="What is 1 + 1?")],
                      prediction="2", scores={"acc": 1.0}, status="scored")
    retried = SampleRecord(task="t", sample_id="1#b", input="Q: two?", prediction="", scores={"acc": 0.0},
                           status="scored")
    failed = SampleRecord(task="t", sample_id="2#c", input="Q: three?", prediction="", scores={"acc": 0.0},
                          status="scored")
    alone = SampleRecord(task="t", sample_id="3#d", input="Q: never asked", status="scored")
    (tmp_path / "requests.jsonl").write_text(
        request_line("m-r1", chat) + request_line("m-r2", "Q: two?", status=504, error="timeout")
        + request_line("m-r3", "Q: two?") + request_line("m-r4", "Q: three?", status=500, error="status_500")
        + request_line("j-r1", "Q: never asked", role="judge"))
    joined = join_requests([ok, retried, failed, alone], tmp_path)
    assert [record.request_ids for record in joined] == [["m-r1"], ["m-r2", "m-r3"], ["m-r4"], []]
    assert [record.status for record in joined] == ["scored", "scored", "error", "scored"]
    assert joined[2].scores == {} and "status_500" in (joined[2].error or "")
    assert join_requests([ok], tmp_path / "nowhere") == [ok]

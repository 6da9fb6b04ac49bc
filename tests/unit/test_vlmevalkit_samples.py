"""VLMEvalKit per-sample records, on files real runs of the vlmevalkit image wrote (fixtures/vlmevalkit/README.md).

Expected values are read off the rows by hand (tests/fixtures/lmudata/README.md says which answers the test endpoint
gets right) and the images' sha256s are taken from the LMUData TSVs the runs read, not from the files under test.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest

from orchestrator.runtime.harness_parser import load_parsers
from orchestrator.schema.errors import ResultsParseError
from orchestrator.schema.samples import ImageRef, Message, SampleRecord, TextPart, sample_id

VLMEVALKIT = load_parsers(Path(__file__).resolve().parents[2] / "images" / "vlmevalkit")
parse, samples = VLMEVALKIT.parse, VLMEVALKIT.parse_samples

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RUNS = FIXTURES / "vlmevalkit"
RUN_DIR = Path("test-model") / "T20261128_Gunknown"
FAIL = "Failed to obtain answer via API."

csv.field_size_limit(sys.maxsize)


def lmudata(name: str) -> list[dict[str, str]]:
    with (FIXTURES / "lmudata" / "LMUData" / f"{name}.tsv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def image_sha(name: str, index: int) -> str:
    return hashlib.sha256(base64.b64decode(lmudata(name)[index]["image"])).hexdigest()


def by_index(records: list[SampleRecord]) -> dict[str, SampleRecord]:
    return {record.sample_id.split("#")[0]: record for record in records}


def copy_run(case: str, tmp_path: Path) -> Path:
    out = tmp_path / case
    shutil.copytree(RUNS / case, out)
    return out


def test_ocrbench_records_hand_checked() -> None:
    records = by_index(samples(RUNS / "ocrbench_samples"))
    assert len(records) == 10
    first = records["1"]
    assert first.task == "regular-text-recognition"
    assert (first.status, first.scores, first.error) == ("scored", {"accuracy": 1.0}, None)
    assert first.prediction == "This is a deterministic test response."  # "response" is inside it: a hit
    assert first.target == ["response"]
    assert first.input == [Message(role="user", content=[ImageRef(sha256=image_sha("OCRBench", 1)),
                                                          TextPart(text="what is written in the image?")])]
    assert records["7"].target == ["350", "350.00"] and records["7"].scores == {"accuracy": 1.0}
    assert records["5"].prediction == "The answer is 3." and records["5"].scores == {"accuracy": 0.0}
    assert records["9"].task == "handwritten-mathematical-expression-recognition"
    assert sum(r.scores["accuracy"] for r in records.values()) == 5


def test_sample_id_is_the_index_and_the_dataset_row_with_its_image_hash() -> None:
    row = lmudata("OCRBench")[0]
    document = {"index": "0", "question": row["question"], "answer": row["answer"], "category": row["category"],
                "image_sha256": [image_sha("OCRBench", 0)]}
    assert by_index(samples(RUNS / "ocrbench_samples"))["0"].sample_id == sample_id("0", document)


def test_sample_ids_are_the_same_in_another_run_and_differ_when_the_data_does(tmp_path: Path) -> None:
    ids = [r.sample_id for r in samples(RUNS / "ocrbench_samples")]
    assert [r.sample_id for r in samples(RUNS / "ocrbench_api_failures")] == ids
    out = copy_run("ocrbench_samples", tmp_path)
    predictions = out / RUN_DIR / "test-model_OCRBench.tsv"
    predictions.write_text(predictions.read_text().replace("['GIRAFFE']", "['ELEPHANT']"))
    changed = [r.sample_id for r in samples(out)]
    assert changed[1:] == ids[1:] and changed[0] != ids[0] and changed[0].startswith("0#")


@pytest.mark.parametrize(("case", "group"), [("ocrbench_samples", "ocrbench"), ("chartqa_samples", "chartqa"),
                                             ("ai2d_samples", "ai2d")])
def test_each_tasks_mean_is_what_vlmevalkit_reported(case: str, group: str) -> None:
    results = parse(RUNS / case)
    by_task: dict[str, list[float]] = {}
    for record in samples(RUNS / case):
        by_task.setdefault(record.task, []).append(record.scores["accuracy"])
    assert set(by_task) == set(results.tasks)
    for task, values in by_task.items():
        reported = results.tasks[task].metrics["accuracy"].scores["accuracy"].value
        assert sum(values) / len(values) == pytest.approx(reported)
    overall = [v for values in by_task.values() for v in values]
    reported = results.groups[group].metrics["accuracy"].scores["accuracy"].value
    assert sum(overall) / len(overall) == pytest.approx(reported)


def test_chartqa_tasks_are_splits_and_the_input_is_the_prompt_as_sent() -> None:
    records = by_index(samples(RUNS / "chartqa_samples"))
    question = lmudata("ChartQA_TEST")[4]["question"]
    assert records["4"].task == "test-augmented" and records["0"].task == "test-human"
    assert records["4"].input == [Message(role="user", content=[
        ImageRef(sha256=image_sha("ChartQA_TEST", 4)),
        TextPart(text=question + "\nAnswer the question using a single word or phrase.")])]
    assert (records["4"].target, records["4"].prediction, records["4"].scores) == (
        "The answer is 3.", "The answer is 3.", {"accuracy": 1.0})
    assert records["1"].scores == {"accuracy": 0.0}


def test_multiple_choice_a_random_pick_is_unscored_with_the_hit_vlmevalkit_counted() -> None:
    records = by_index(samples(RUNS / "ai2d_samples"))
    assert (records["0"].task, records["0"].status, records["0"].scores) == ("insects", "scored", {"accuracy": 1.0})
    assert records["0"].target == "D" and records["0"].prediction == "The answer is 6."
    for index in ("1", "2"):
        assert records[index].status == "unscored"
        assert "Failed to predict, thus randomly generate one" in (records[index].error or "")
        assert records[index].scores == {"accuracy": 1.0}  # VLMEvalKit's lucky random pick, as it counted it
    assert not isinstance(records["0"].input, str)
    [message] = records["0"].input
    assert not isinstance(message.content, str)
    text = message.content[1]
    assert isinstance(text, TextPart) and "Options:\nA. 4\nB. 8\nC. 10\nD. 6\n" in text.text


def test_api_failures_are_errors_never_scored_answers() -> None:
    records = by_index(samples(RUNS / "ocrbench_api_failures"))
    failed = {index for index, record in records.items() if record.status == "error"}
    assert failed == {"0", "1", "3", "6", "7", "8"}
    for index in failed:
        assert (records[index].error, records[index].prediction, records[index].scores) == (FAIL, None, {})
    assert {records[i].status for i in ("2", "4", "5", "9")} == {"scored"}
    assert records["2"].prediction == "This is a deterministic test response."


def test_an_api_failure_the_judge_scored_as_a_hit_is_still_an_error() -> None:
    with (RUNS / "ai2d_api_failures" / RUN_DIR / "test-model_AI2D_TEST_test-model_result.tsv").open(newline="") as f:
        judged = {row["index"]: row for row in csv.DictReader(f, delimiter="\t")}
    assert judged["0"]["prediction"] == FAIL and judged["0"]["hit"] == "1"  # what VLMEvalKit counted
    records = samples(RUNS / "ai2d_api_failures")
    assert [(r.status, r.error, r.scores) for r in records] == [("error", FAIL, {})] * 3


# ---- the files around the records ------------------------------------------------------------------------------


def test_symlinks_into_the_model_dir_are_not_read_twice(tmp_path: Path) -> None:
    out = copy_run("ocrbench_samples", tmp_path)
    (out / "test-model" / "test-model_OCRBench.tsv").symlink_to("/workspace/results/nowhere.tsv")  # as on the host
    (out / "test-model" / "test-model_OCRBench_evals_hit.tsv").symlink_to(
        out / RUN_DIR / "test-model_OCRBench_evals_hit.tsv")
    assert samples(out) == samples(RUNS / "ocrbench_samples")


def test_no_prediction_file_means_no_records(tmp_path: Path) -> None:
    (tmp_path / "test-model").mkdir()
    assert samples(tmp_path) == []
    with pytest.raises(ResultsParseError, match="does not exist"):
        samples(tmp_path / "missing")


def test_predictions_only_in_excel_are_an_error_naming_the_file(tmp_path: Path) -> None:
    out = copy_run("ocrbench_samples", tmp_path)
    predictions = out / RUN_DIR / "test-model_OCRBench.tsv"
    predictions.rename(predictions.with_suffix(".xlsx"))
    with pytest.raises(ResultsParseError, match=r"only as Excel workbooks .*test-model_OCRBench\.xlsx"):
        samples(out)


def test_without_per_sample_hits_a_sample_is_unscored_not_wrong(tmp_path: Path) -> None:
    out = copy_run("ocrbench_api_failures", tmp_path)
    (out / RUN_DIR / "test-model_OCRBench_evals_hit.tsv").unlink()
    statuses = {r.status for r in samples(out) if r.prediction is not None}
    assert statuses == {"unscored"}
    assert all(r.scores == {} for r in samples(out))
    assert {r.status for r in samples(out) if r.prediction is None} == {"error"}


def test_json_predictions_give_the_same_records(tmp_path: Path) -> None:
    out = copy_run("chartqa_samples", tmp_path)
    predictions = out / RUN_DIR / "test-model_ChartQA_TEST.tsv"
    with predictions.open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    numbers = [{k: int(v) if k == "index" else v for k, v in row.items()} for row in rows]  # pandas' to_dict
    predictions.with_suffix(".json").write_text(json.dumps(numbers))
    predictions.unlink()
    assert samples(out) == samples(RUNS / "chartqa_samples")


def test_without_the_images_prompt_column_the_input_is_the_question_and_options(tmp_path: Path) -> None:
    out = copy_run("ai2d_samples", tmp_path)
    predictions = out / RUN_DIR / "test-model_AI2D_TEST.tsv"
    with predictions.open(newline="") as handle:
        rows = [{k: v for k, v in row.items() if k != "evals_prompt"} for row in csv.DictReader(handle, delimiter="\t")]
    with predictions.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter="\t", quoting=csv.QUOTE_ALL)
        writer.writeheader()
        writer.writerows(rows)
    record = by_index(samples(out))["0"]
    assert record.input == "How many legs does an insect have?\nA. 4\nB. 8\nC. 10\nD. 6"
    assert record.sample_id == by_index(samples(RUNS / "ai2d_samples"))["0"].sample_id  # the prompt is not data


def test_a_broken_file_is_one_error_naming_it(tmp_path: Path) -> None:
    out = copy_run("chartqa_samples", tmp_path)
    predictions = out / RUN_DIR / "test-model_ChartQA_TEST.tsv"
    predictions.write_text('"index"\t"question"\n"0"\t"q"\n')
    with pytest.raises(ResultsParseError, match="no 'index' or 'prediction' column"):
        samples(out)
    predictions.unlink()
    predictions.with_suffix(".json").write_text("{truncated")
    with pytest.raises(ResultsParseError, match=r"cannot read .*test-model_ChartQA_TEST\.json"):
        samples(out)


# ---- judged datasets the generated LMUData does not cover: files laid out as the harness source writes them ---------


def write_tsv(path: Path, rows: list[dict[str, str]]) -> None:
    """As VLMEvalKit's ``dump`` writes ``.tsv`` (pandas ``to_csv``, tab-separated, every cell quoted)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter="\t", quoting=csv.QUOTE_ALL)
        writer.writeheader()
        writer.writerows(rows)


def test_mathvista_extraction_hits_prefetch_and_a_judge_that_gave_up(tmp_path: Path) -> None:
    """``MathVista.evaluate``: ``<m>_MathVista_MINI_<judge>.xlsx`` (+ our .tsv) with ``res`` and ``log``."""
    run = tmp_path / "m" / "T20260101_Gabc"
    base = {"question": "q", "answer": "5", "question_type": "free_form", "answer_type": "integer",
            "task": "figure question answering", "skills": "['arithmetic reasoning']"}
    predictions = [base | {"index": "0", "prediction": "It is 5."}, base | {"index": "1", "prediction": "Seven"},
                   base | {"index": "2", "prediction": "?"}, base | {"index": "3", "prediction": FAIL + " "}]
    logs = [("5", "Prefetch succeed"), ("7", "Succeed"), ("", "Try 0: output is ?, failed to parse.\nAll 5 retries "
                                                         "failed.\n"), ("", "All 5 retries failed.\n")]
    write_tsv(run / "m_MathVista_MINI.tsv", predictions)
    judged = [p | {"res": r, "log": log} for p, (r, log) in zip(predictions, logs, strict=True)]
    write_tsv(run / "m_MathVista_MINI_gpt-4o.tsv", judged)
    (run / "m_MathVista_MINI_gpt-4o_score.csv").write_text('"Task&Skill","tot","hit"\n"Overall","4","1"\n')
    write_tsv(run / "m_MathVista_MINI_evals_hit.tsv", [{"index": str(i), "hit": h} for i, h in enumerate("1000")])
    records = by_index(samples(tmp_path))
    assert records["0"].task == "figure-question-answering"
    assert (records["0"].status, records["0"].scores) == ("scored", {"accuracy": 1.0, "prefetch_rate": 1.0})
    assert (records["1"].status, records["1"].scores) == ("scored", {"accuracy": 0.0, "prefetch_rate": 0.0})
    assert records["2"].status == "unscored" and "All 5 retries failed." in (records["2"].error or "")
    assert (records["3"].status, records["3"].error, records["3"].scores) == ("error", FAIL, {})
    assert records["1"].input == "q"  # no evals_prompt column: the question as text


def test_ocr_reasoning_with_a_judge_named_org_slash_model_and_its_reasoning_score(tmp_path: Path) -> None:
    """A judge ``org/judge`` puts the judged file one directory down: ``<m>_OCR_Reasoning_org/judge.tsv``."""
    run = tmp_path / "m" / "T20260101_Gabc"
    row = {"index": "0", "question": "q", "answer": "3", "task": "Math", "prediction": "3"}
    write_tsv(run / "m_OCR_Reasoning.tsv", [row])
    write_tsv(run / "m_OCR_Reasoning_org" / "judge.tsv", [row | {"res": "3", "log": "Succeed", "reason_score": "0.7"}])
    write_tsv(run / "m_OCR_Reasoning_evals_hit.tsv", [{"index": "0", "hit": "1.0"}])
    [record] = samples(tmp_path)
    assert (record.task, record.status) == ("math", "scored")
    assert record.scores == {"accuracy": 1.0, "prefetch_rate": 0.0, "reasoning_score": 0.7}


def test_slidevqa_scores_and_an_unextracted_answer(tmp_path: Path) -> None:
    """``SlideVQA_acc`` re-dumps the judged file with ``anls``, ``em``, ``f1``; ``pred`` is the extraction."""
    run = tmp_path / "m" / "T20260101_Gabc"
    rows = [{"index": "0", "question": "q", "answer": "Paris", "prediction": "Paris."},
            {"index": "1", "question": "q2", "answer": "4", "prediction": "no idea"}]
    write_tsv(run / "m_SLIDEVQA.tsv", rows)
    write_tsv(run / "m_SLIDEVQA_gpt-4o.tsv", [
        rows[0] | {"res": "Extracted answer: Paris", "log": "Succeed", "pred": "Paris", "anls": "1.0", "em": "True",
                   "f1": "1.0"},
        rows[1] | {"res": "nothing", "log": "Succeed", "pred": "", "anls": "0.0", "em": "False", "f1": "0.0"}])
    records = by_index(samples(tmp_path))
    assert (records["0"].task, records["0"].status) == ("slidevqa", "scored")
    assert records["0"].scores == {"anls": 1.0, "exact_match": 1.0, "f1": 1.0}
    assert records["1"].status == "unscored" and records["1"].scores["exact_match"] == 0.0


def test_mmmu_tasks_are_categories_across_splits(tmp_path: Path) -> None:
    run = tmp_path / "m" / "T20260101_Gabc"
    rows = [{"index": "1", "question": "q", "A": "x", "B": "y", "answer": "A", "split": "dev", "category": "Art",
             "l2-category": "Art & Design", "prediction": "A"},
            {"index": "2", "question": "q", "A": "x", "B": "y", "answer": "B", "split": "validation",
             "category": "Clinical Medicine", "l2-category": "Health", "prediction": "A"}]
    write_tsv(run / "m_MMMU_DEV_VAL.tsv", rows)
    write_tsv(run / "m_MMMU_DEV_VAL_gpt-4o_result.tsv", [rows[0] | {"hit": "1", "log": "Match Log: A. "},
                                                         rows[1] | {"hit": "0", "log": "Match Log: A. "}])
    records = by_index(samples(tmp_path))
    assert [(r.task, r.status, r.scores) for r in records.values()] == [
        ("art", "scored", {"accuracy": 1.0}), ("clinical-medicine", "scored", {"accuracy": 0.0})]
    assert records["1"].input == "q\nA. x\nB. y"

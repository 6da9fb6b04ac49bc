"""lm-eval per-sample parser against samples files recorded from real lm-eval 0.4.13 runs (tests/fixtures/lm_eval)."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from orchestrator.runtime.harness_parser import load_parsers
from orchestrator.schema.errors import ResultsParseError
from orchestrator.schema.samples import ImageRef, Message, SampleRecord, TextPart, sample_id

LM_EVAL = load_parsers(Path(__file__).resolve().parents[2] / "images" / "lm-eval")
parse, parse_samples = LM_EVAL.parse, LM_EVAL.parse_samples

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "lm_eval"
WITH_SAMPLES = ["gsm8k_chat_system", "group_generative_samples", "group_multiple_choice_samples",
                "invalid_extractions", "repeats", "image_humaneval_offline", "image_ifbench"]
STRICT = "exact_match__strict-match"
FLEXIBLE = "exact_match__flexible-extract"
QUESTION_0 = {"question": "What is 22 plus 11?", "answer": "22 plus 11 equals <<22+11=33>>33.\n#### 33"}
QUESTION_1 = {"question": "What is 27 plus 43?", "answer": "27 plus 43 equals <<27+43=70>>70.\n#### 70"}


def of_task(records: list[SampleRecord], task: str) -> list[SampleRecord]:
    return [r for r in records if r.task == task]


def raw_lines(case: str, task: str) -> list[dict[str, Any]]:
    path = next((FIXTURES / case).rglob(f"samples_{task}_*.jsonl"))
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_chat_records_every_field() -> None:
    records = parse_samples(FIXTURES / "gsm8k_chat_system")
    assert [(r.task, r.sample_id.split("#")[0], r.repeat) for r in records] == [
        ("gsm8k_tiny_a", str(i), 0) for i in range(6)]
    first, second = records[0], records[1]
    system = Message(role="system", content="You are a careful calculator.")
    assert first == SampleRecord(
        task="gsm8k_tiny_a", sample_id=sample_id(0, QUESTION_0), repeat=0,
        input=[system, Message(role="user", content="Question: What is 22 plus 11?\nAnswer:")],
        target="22 plus 11 equals <<22+11=33>>33.\n#### 33", prediction="22 plus 11 is 33.\n#### 33",
        scores={STRICT: 1.0, FLEXIBLE: 1.0}, status="scored", error=None, request_ids=[])
    assert first.sample_id == "0#" + hashlib.sha256(
        json.dumps(QUESTION_0, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]
    # "The sum is 70.": strict-match finds no "#### N" but flexible-extract finds 70: scored.
    assert second == SampleRecord(
        task="gsm8k_tiny_a", sample_id=sample_id(1, QUESTION_1), repeat=0,
        input=[system, Message(role="user", content="Question: What is 27 plus 43?\nAnswer:")],
        target="27 plus 43 equals <<27+43=70>>70.\n#### 70", prediction="The sum is 70.",
        scores={STRICT: 0.0, FLEXIBLE: 1.0}, status="scored")


def test_completions_records_have_the_prompt_text_and_the_raw_output() -> None:
    records = parse_samples(FIXTURES / "group_generative_samples")
    first = of_task(records, "gsm8k_tiny_a")[0]
    assert first.input == "Question: What is 22 plus 11?\nAnswer:"
    assert first.prediction == " 22 plus 11 is 33.\n#### 33"  # as the endpoint answered, leading space kept
    assert first.sample_id == sample_id(0, QUESTION_0)


def test_sample_ids_are_stable_across_runs_prompts_and_endpoint_types(tmp_path: Path) -> None:
    # gsm8k_chat's older run (no system message) is the one that logged samples: keep only that run.
    older = tmp_path / "older" / "local__tiny-arith"
    older.mkdir(parents=True)
    for name in ("results_2026-11-27T07-25-48.298356.json", "samples_gsm8k_tiny_a_2026-11-27T07-25-48.298356.jsonl"):
        shutil.copy(FIXTURES / "gsm8k_chat" / "local__tiny-arith" / name, older / name)
    plain = parse_samples(tmp_path / "older")
    system = parse_samples(FIXTURES / "gsm8k_chat_system")
    completions = of_task(parse_samples(FIXTURES / "group_generative_samples"), "gsm8k_tiny_a")
    assert [r.sample_id for r in plain] == [r.sample_id for r in system]
    assert [r.sample_id for r in completions] == [r.sample_id for r in plain][:5]
    assert all(a.input != b.input for a, b in zip(plain, system, strict=True))
    # Another task over other documents: other ids.
    other = of_task(parse_samples(FIXTURES / "group_generative_samples"), "gsm8k_tiny_b")
    assert not {r.sample_id for r in other} & {r.sample_id for r in completions}


def test_only_the_newest_runs_samples_are_read() -> None:
    # gsm8k_chat: the older run logged samples, the newer (the results parse reads) did not.
    assert parse_samples(FIXTURES / "gsm8k_chat") == []
    assert parse_samples(FIXTURES / "output_path_json") == []


@pytest.mark.parametrize("case", WITH_SAMPLES)
def test_mean_of_every_sample_score_is_the_reported_value(case: str) -> None:
    records = parse_samples(FIXTURES / case)
    results = parse(FIXTURES / case)
    assert records and {r.task for r in records} == set(results.tasks)
    checked = 0
    for task, result in results.tasks.items():
        per_doc: dict[str, dict[str, float]] = defaultdict(dict)
        for record in of_task(records, task):
            for name, value in record.scores.items():
                per_doc[name][record.sample_id] = value  # repeats carry their document's score
        for metric in result.metrics.values():
            for name, reported in metric.scores.items():
                if name in per_doc:
                    values = list(per_doc[name].values())
                    assert math.fsum(values) / len(values) == pytest.approx(reported.value, rel=1e-12), (task, name)
                    assert len(values) == reported.stats.count
                    checked += 1
    assert checked >= 1


def test_multiple_choice_predicts_the_most_likely_choice() -> None:
    records = parse_samples(FIXTURES / "group_multiple_choice_samples")
    assert {r.task for r in records} == {"mc_colors", "mc_numbers"}
    colors = of_task(records, "mc_colors")
    assert colors[0].input == "Which colour is listed first here: orange, green, red, blue?\nAnswer:"
    assert colors[0].target == "0"  # lm-eval logs the target as a string
    assert colors[0].prediction == " blue"  # loglikelihoods -20.5, -13.0, -10.7, -7.7
    assert colors[3].prediction == " green" and colors[3].scores == {"acc": 1.0, "acc_norm": 0.0}
    for task in ("mc_colors", "mc_numbers"):
        for record, line in zip(of_task(records, task), raw_lines("group_multiple_choice_samples", task), strict=True):
            right = " " + str(line["doc"]["choices"][line["doc"]["answer"]])
            assert (record.prediction == right) == (record.scores["acc"] == 1.0)
            assert record.status == "scored"


def test_no_extracted_answer_is_unscored() -> None:
    records = parse_samples(FIXTURES / "invalid_extractions")
    unscored = [r for r in records if r.status == "unscored"]
    # "What is seven plus eight?" and the two other questions in words: "I do not know.", [invalid] for both filters.
    assert [r.sample_id.split("#")[0] for r in unscored] == ["1", "4", "7"]
    for record in unscored:
        assert record.prediction == "I do not know."
        assert record.scores == {STRICT: 0.0, FLEXIBLE: 0.0}
        assert record.error == "no answer extracted (filters strict-match, flexible-extract: [invalid])"
    # "The sum is 16.": strict-match failed, flexible-extract found "16.": scored (and wrong).
    sixth = records[6]
    assert (sixth.status, sixth.prediction, sixth.error) == ("scored", "The sum is 16.", None)


def test_repeats_are_one_record_each_with_their_documents_scores() -> None:
    records = parse_samples(FIXTURES / "repeats")
    assert [(r.sample_id.split("#")[0], r.repeat) for r in records] == [
        (str(doc), repeat) for doc in range(4) for repeat in range(3)]
    lines = raw_lines("repeats", "gsm8k_tiny_rep")
    for record in records:
        line = next(li for li in lines if str(li["doc_id"]) == record.sample_id.split("#")[0])
        assert record.prediction == line["resps"][0][record.repeat]
        assert set(record.scores) == {STRICT, "exact_match__maj@3"}


def test_image_runs_humaneval_and_ifbench() -> None:
    humaneval = parse_samples(FIXTURES / "image_humaneval_offline")
    assert [r.task for r in humaneval] == ["humaneval_offline"] * 2
    # The raw answer, not create_test's program (the prompt plus the answer).
    assert humaneval[0].prediction == "This is a deterministic test response."
    assert isinstance(humaneval[0].input, str) and humaneval[0].input.startswith("from typing import List")
    assert humaneval[0].scores == {"pass@1__create_test": 0.0}
    assert humaneval[0].sample_id.startswith("0#")
    ifbench = parse_samples(FIXTURES / "image_ifbench")
    assert isinstance(ifbench[0].input, list) and ifbench[0].input[0].role == "user"
    # inst_level_* are lists of booleans per sample: no single number, left out.
    assert ifbench[0].scores == {"prompt_level_strict_acc": 0.0, "prompt_level_loose_acc": 0.0}
    assert ifbench[0].target == "0"


def copy_run(tmp_path: Path, case: str = "invalid_extractions") -> Path:
    out = tmp_path / case
    shutil.copytree(FIXTURES / case, out)
    return out


def samples_file(out: Path) -> Path:
    return next(out.rglob("samples_*.jsonl"))


def test_truncated_samples_file_names_the_file_and_line(tmp_path: Path) -> None:
    out = copy_run(tmp_path)
    path = samples_file(out)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:5]) + lines[5][:40])  # killed while writing line 6
    with pytest.raises(ResultsParseError, match=rf"{path.name}:6: cannot read lm-eval samples: not JSON"):
        parse_samples(out)


def test_a_line_that_is_not_a_sample_is_refused(tmp_path: Path) -> None:
    out = copy_run(tmp_path)
    path = samples_file(out)
    path.write_text(path.read_text() + "[1, 2]\n")
    with pytest.raises(ResultsParseError, match=rf"{path.name}:17: .*not an object with a doc_id"):
        parse_samples(out)


def test_a_line_without_arguments_is_refused(tmp_path: Path) -> None:
    out = copy_run(tmp_path)
    path = samples_file(out)
    path.write_text(json.dumps({"doc_id": 0, "doc": {}}) + "\n")
    with pytest.raises(ResultsParseError, match="doc_id 0: no 'arguments'"):
        parse_samples(out)


def test_images_in_chat_messages_are_sha256_references(tmp_path: Path) -> None:
    out = copy_run(tmp_path, "gsm8k_chat_system")
    path = samples_file(out)
    image = b"\x89PNG fake image bytes"
    line = json.loads(path.read_text().splitlines()[0])
    content = [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(image).decode(),
                                                   "detail": "auto"}},
               {"type": "text", "text": "What is in the picture?"}]
    line["arguments"]["gen_args_0"]["arg_0"] = [json.dumps([{"role": "user", "content": content}])]
    path.write_text(json.dumps(line) + "\n")
    [record] = parse_samples(out)
    assert record.input == [Message(role="user", content=[ImageRef(sha256=hashlib.sha256(image).hexdigest()),
                                                          TextPart(text="What is in the picture?")])]
    assert "base64" not in record.model_dump_json()

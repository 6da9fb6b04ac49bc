"""The simple-evals image, run as NVIDIA's Evals Factory documents it, offline, against the deterministic test endpoint.

Data: images/simple-evals/fixtures/data (make_fixtures.py), mounted with --data_dir in the Hub repositories' layout.
Replies: images/simple-evals/fixtures/script.json (scripted: the first rule whose text is in the prompt answers).
Expected scores are worked out here from those rows and replies and simple-evals' documented extraction rules,
not copied from a run.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import yaml

from orchestrator.schema.container import RESULTS_DIR
from orchestrator.schema.results import ResultsFile
from orchestrator.schema.samples import SampleRecord
from tests.endpoint.script import Rule, load_script
from tests.endpoint.server import EndpointServer, serve
from tests.integration.harness import Finished, run_image

pytestmark = pytest.mark.docker

HARNESS = Path(__file__).resolve().parents[2] / "images" / "simple-evals"
DATA = HARNESS / "fixtures" / "data"
SCRIPT = HARNESS / "fixtures" / "script.json"
IMAGE = os.environ.get("EVALS_SIMPLE_EVALS_IMAGE", "evals/simple-evals:latest")
TASKS = 88


@pytest.fixture(scope="module")
def image() -> str:
    try:
        docker.from_env().images.get(IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{IMAGE} is not built; run `bash scripts/build-image.sh simple-evals`")
    except docker.errors.DockerException as err:
        pytest.fail(f"integration tests need a Docker engine ({err})")
    return IMAGE


@pytest.fixture
def scripted() -> Iterator[EndpointServer]:
    with serve(script=load_script(SCRIPT)) as server:
        yield server


def eval_args(task: str, endpoint: EndpointServer, *extra: str) -> list[str]:
    return ["run_eval", "--eval_type", task, "--model_id", endpoint.model, "--model_url",
            f"{endpoint.url}/v1/chat/completions", "--model_type", "chat", "--output_dir", RESULTS_DIR, "--offline",
            *extra]


def run_ok(image: str, args: list[str], out: Path) -> ResultsFile:
    finished = run_image(image, args, output_dir=out, data_dir=DATA, timeout=300)
    assert finished.exit_code == 0, finished.logs[-4000:]
    return ResultsFile.model_validate(yaml.safe_load((out / "results.yml").read_text()))


def samples(out: Path) -> list[SampleRecord]:
    return [SampleRecord.model_validate_json(text) for text in (out / "samples.jsonl").read_text().splitlines()]


def micro(results: ResultsFile, task: str, name: str = "micro") -> float:
    return results.results.tasks[task].metrics["score"].scores[name].value


def asked(endpoint: EndpointServer) -> int:
    return len([r for r in endpoint.requests if r.kind == "inference"])


# ---- the image -------------------------------------------------------------------------------------------------


def test_ls_lists_every_task_in_both_documented_forms(image: str, tmp_path: Path) -> None:
    for args in (["ls"], ["core_evals_simple_evals", "ls"]):
        finished = run_image(image, args, output_dir=tmp_path)
        assert finished.exit_code == 0, finished.logs
        for task in ("gpqa_diamond", "math_test_500", "mmlu_pro", "mgsm", "simpleqa", "mmlu_zh-lite",
                     "gpqa_diamond_aa_v3", "healthbench_hard"):
            assert task in finished.logs
    labels = docker.from_env().images.get(image).labels
    assert labels["evals.harness"] == "simple-evals" and len(json.loads(labels["evals.tasks"])) == TASKS


# ---- exact scores ----------------------------------------------------------------------------------------------


def gpqa_letters(count: int) -> list[str]:
    """The correct letter of each GPQA row: simple-evals shuffles the four answers with random.Random(seed) where
    seed = SeedGenerator(42).get_seed(1): random.Random(42 * 2147483647 + 1).randint(0, 2**32 - 1); the correct
    answer (index 0 before shuffling) lands at permutation.index(0)."""
    rng = random.Random(random.Random(42 * 2147483647 + 1).randint(0, 2**32 - 1))
    return ["ABCD"[rng.sample(range(4), 4).index(0)] for _ in range(count)]


def test_expected_gpqa_letters_make_the_script_non_trivial() -> None:
    # The script answers D, A, D and no letter: two right, one wrong, one with nothing to extract.
    assert gpqa_letters(4) == ["D", "C", "D", "D"]


def test_gpqa_diamond_exact_score_and_samples(image: str, scripted: EndpointServer, tmp_path: Path) -> None:
    results = run_ok(image, eval_args("gpqa_diamond", scripted), tmp_path)
    # Replies "Answer: D" (right), "Answer: A" (C is right), "...\nAnswer: D" (right), "I am not sure." (no letter).
    assert micro(results, "gpqa_diamond") == 0.5
    assert results.results.groups["gpqa_diamond"].metrics["score"].scores["micro"].stats.stderr == pytest.approx(
        0.5 / 3 ** 0.5)
    records = samples(tmp_path)
    assert [(r.target, r.scores, r.status) for r in records] == [
        ("D", {"micro": 1.0}, "scored"), ("C", {"micro": 0.0}, "scored"), ("D", {"micro": 1.0}, "scored"),
        ("D", {"micro": 0.0}, "unscored")]
    assert records[0].prediction == "Answer: D" and "Earth's atmosphere" in str(records[0].input)
    assert all(r.request_ids for r in records)
    assert results.results.tasks["gpqa_diamond"].samples is not None
    assert asked(scripted) == 4


def test_math_test_500_graded_by_sympy(image: str, scripted: EndpointServer, tmp_path: Path) -> None:
    results = run_ok(image, eval_args("math_test_500", scripted), tmp_path)
    # 0.5 for \frac{1}{2} and (x+1)^2 for x^2+2x+1 are equal only symbolically (sympy says yes); "3" is right;
    # "4" for 3 is wrong; the last reply has no "Answer:" line: 3 of 5, and no judge was asked.
    assert micro(results, "math_test_500") == pytest.approx(0.6)
    records = samples(tmp_path)
    assert [r.scores["micro"] for r in records] == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert [r.target for r in records] == ["\\frac{1}{2}", "3", "x^2+2x+1", "3", "2"]
    assert records[-1].status == "unscored"
    assert "sympy grader" in (tmp_path / "logs" / "harness.log").read_text()
    assert asked(scripted) == 5


def test_mmlu_pro_limit_samples(image: str, scripted: EndpointServer, tmp_path: Path) -> None:
    results = run_ok(image, eval_args("mmlu_pro", scripted, "--overrides", "config.params.limit_samples=3"), tmp_path)
    # "**Answer:** D" (D, right: the regex allows markdown), "Answer: E" (B is right), "answer: a" (extracted "a",
    # compared case-sensitively with "A": wrong); the fourth row is past the limit.
    assert micro(results, "mmlu_pro") == pytest.approx(1 / 3)
    assert [r.scores["micro"] for r in samples(tmp_path)] == [1.0, 0.0, 0.0]
    assert asked(scripted) == 3


def test_mgsm_every_language_subset_and_macro(image: str, scripted: EndpointServer, tmp_path: Path) -> None:
    results = run_ok(image, eval_args("mgsm", scripted), tmp_path)
    # Two rows per language (11). Row 1 (12 pens) is answered right in every language after its own prefix. Row 2
    # (180 km): "<prefix>: 180.0" in the Latin-script languages (180.0 counts as 180), plain "Answer: 180" in the
    # others, where the language's prefix is missing, so nothing is extracted.
    latin, others = ("de", "en", "es", "fr", "sw"), ("bn", "ja", "ru", "te", "th", "zh")
    for lang in latin:
        assert micro(results, lang) == 1.0
    for lang in others:
        assert micro(results, lang) == 0.5
    assert (micro(results, "group_latin"), micro(results, "group_non_latin")) == (1.0, 0.5)
    scores = results.results.groups["mgsm"].metrics["score"].scores
    assert scores["micro"].value == pytest.approx(16 / 22)
    # score_macro: the mean over every per-sample metric: 11 languages and the 2 groups.
    assert scores["macro"].value == pytest.approx((5 * 1.0 + 6 * 0.5 + 1.0 + 0.5) / 13)
    records = samples(tmp_path)
    assert len(records) == 44  # each row under its language and its group
    assert sum(r.status == "unscored" for r in records) == 12


def test_repeats_are_averaged_per_sample(image: str, scripted: EndpointServer, tmp_path: Path) -> None:
    overrides = "config.params.limit_samples=2,config.params.extra.n_samples=2"
    results = run_ok(image, eval_args("gpqa_diamond", scripted, "--overrides", overrides), tmp_path)
    # Each repeat is shuffled anew (4 permutations for 2 rows x 2 repeats): row 0's answer lands at D both times
    # (the script says D: right twice), row 1's at C then D (the script says A: wrong twice). 0.5 per row mean.
    assert gpqa_letters(4)[2:] == ["D", "D"]
    assert micro(results, "gpqa_diamond", "micro_avg_of_2") == 0.5
    records = samples(tmp_path)
    assert sorted((r.sample_id.split("#")[0], r.repeat, r.scores["micro_avg_of_2"]) for r in records) == [
        ("0", 0, 1.0), ("0", 1, 1.0), ("1", 0, 0.0), ("1", 1, 0.0)]
    assert asked(scripted) == 4  # each repeat is its own request (another shuffle, another seed)


def test_math_with_a_judge_asks_it_through_its_proxy(image: str, scripted: EndpointServer, tmp_path: Path) -> None:
    """With config.params.extra.judge set, math_test_500 is NVIDIA's: the judge alone decides each extracted answer
    (simple-evals' equality prompt, "Yes" counts). This judge says Yes to (x+1)^2 for x^2+2x+1 and to 4 for 3, and
    its default sentence, not "yes", to the rest; the fifth reply has no answer, so the judge is not asked: 2 of 5."""
    rules = [Rule("Expression 2: (x+1)^2", reply="Yes"), Rule("Expression 1: 3\n    Expression 2: 4", reply="Yes")]
    with serve(model="judge-model", script=rules) as judge:
        (tmp_path / "run.yml").write_text(yaml.safe_dump({"config": {"params": {"extra": {"judge": {
            "url": f"{judge.url}/v1/chat/completions", "model_id": "judge-model", "api_key": "JUDGE_KEY"}}}}}))
        finished = run_image(image, eval_args("math_test_500", scripted, "--run_config", f"{RESULTS_DIR}/run.yml"),
                             output_dir=tmp_path, data_dir=DATA, env={"JUDGE_KEY": "judge-secret-77"}, timeout=300)
        judged = [r for r in judge.requests if r.kind == "inference"]
    assert finished.exit_code == 0, finished.logs[-4000:]
    results = ResultsFile.model_validate(yaml.safe_load((tmp_path / "results.yml").read_text()))
    assert micro(results, "math_test_500") == pytest.approx(0.4)
    assert [r.scores["micro"] for r in samples(tmp_path)] == [0.0, 0.0, 1.0, 1.0, 0.0]
    assert len(judged) == 4
    assert {(r.header("Authorization"), r.body["model"]) for r in judged} == {("Bearer judge-secret-77",
                                                                               "judge-model")}
    assert results.usage_by_role is not None and results.usage_by_role["judge"].requests == 4
    assert "judge-secret-77" not in "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*")
                                            if p.is_file() and p.suffix in (".yml", ".jsonl", ".log", ".json"))


# ---- bad input -------------------------------------------------------------------------------------------------


def refused(image: str, args: list[str], out: Path, **kwargs: Any) -> Finished:
    finished = run_image(image, args, output_dir=out, timeout=120, **kwargs)
    assert finished.exit_code == 2, finished.logs[-3000:]
    assert "Traceback" not in finished.logs
    return finished


def test_missing_data_is_one_line_naming_the_dataset_and_layout(image: str, endpoint: EndpointServer,
                                                                  tmp_path: Path) -> None:
    finished = refused(image, eval_args("gpqa_main", endpoint), tmp_path / "none")  # no --data_dir
    lines = [line for line in finished.logs.splitlines() if "Idavidrein/gpqa" in line]
    assert lines and "config gpqa_main" in lines[-1] and "Idavidrein/gpqa/" in lines[-1]
    assert "HF_TOKEN" in lines[-1]
    finished = refused(image, eval_args("simpleqa", endpoint, "--overrides",
                                        'config.params.extra.judge={"url": "http://127.0.0.1:9/v1/chat/completions",'
                                        ' "model_id": "j"}'), tmp_path / "simpleqa", data_dir=DATA)
    assert "basicv8vc/SimpleQA" in finished.logs
    assert asked(endpoint) == 0


def test_a_judged_task_without_a_judge_names_the_keys(image: str, endpoint: EndpointServer, tmp_path: Path) -> None:
    finished = refused(image, eval_args("healthbench", endpoint), tmp_path)
    assert "task healthbench is scored by an LLM judge and none is configured" in finished.logs
    assert "config.params.extra.judge.url" in finished.logs and ".model_id" in finished.logs
    assert asked(endpoint) == 0

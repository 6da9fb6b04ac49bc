"""The ruler image, run as a user would: `docker run IMAGE ls|run_eval ...` against the test endpoint's scripted
replies (images/ruler/fixtures/script.json) on the first two samples RULER generates at 4000 tokens (seed 42).

Expected scores, from the script and the generated samples (RULER's string_match_all: the share of the references
found in the answer, case-insensitive; string_match_part for qa: 1 if any is found):
- chat, the endpoint's byte-level tokenizer (its /tokenize, through the proxy): niah_single_1 sample 0 answers its
  needle 4612365 (1), sample 1 answers 7374123 for 7374122 (0): 0.5. niah_multivalue sample 0 names 2 of its 4
  values (0.5), sample 1 all 4 (1): 0.75. cwe sample 0 names 5 of the 10 common words (0.5); sample 1 gets the
  endpoint's default reply to a question with a number, "The answer is 10." (0): 0.25. Mean of the three: 0.5.
- completions, a local tokenizer.json under --data_dir (one token per word): vt sample 0 gets the 5 variables, but
  its 33 bytes are cut to the task's 30-token budget (the endpoint counts bytes): "TYFAD, DROFS, TEPTC, VZCAI, RY",
  4 of 5 (0.8); sample 1 gets "The answer is 63707." (0): 0.4. qa_1 sample 0 answers "France." (1), sample 1 the
  default reply (0): 0.5. Mean 0.45.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
import yaml

from orchestrator.schema.container import RESULTS_DIR
from orchestrator.schema.results import ResultsFile
from orchestrator.schema.samples import SAMPLES_FILE, Message, SampleRecord
from tests.endpoint.script import parse_script
from tests.endpoint.server import EndpointServer, serve
from tests.integration.harness import run_image

pytestmark = pytest.mark.docker

IMAGE = os.environ.get("EVALS_RULER_IMAGE", "evals/ruler:latest")
FIXTURES = Path(__file__).resolve().parents[2] / "images" / "ruler" / "fixtures"
LENGTHS = ("4k", "8k", "16k", "32k", "64k", "128k", "256k", "512k", "1m")
TASKS = ["ruler-chat", "ruler-completions", *(f"ruler-{n}-{kind}" for n in LENGTHS for kind in ("chat", "completions"))]
KEY = "sk-ruler-integration-3"


@pytest.fixture(scope="module")
def image() -> str:
    try:
        docker.from_env().images.get(IMAGE)
    except docker.errors.DockerException as err:
        pytest.fail(f"{IMAGE} is not available ({err}); run `scripts/build-image.sh ruler`")
    return IMAGE


@pytest.fixture
def scripted() -> Iterator[EndpointServer]:
    script = parse_script(json.loads((FIXTURES / "script.json").read_text(encoding="utf-8")))
    with serve(script=script) as server:
        yield server


def run_eval(task: str, url: str, model_type: str, overrides: str, *extra: str) -> list[str]:
    return ["run_eval", "--eval_type", task, "--model_id", "test-model", "--model_url", url,
            "--model_type", model_type, "--output_dir", RESULTS_DIR, "--overrides", overrides, *extra]


def results_of(output_dir: Path) -> ResultsFile:
    return ResultsFile.model_validate(yaml.safe_load((output_dir / "results.yml").read_text()))


def samples_of(output_dir: Path) -> list[SampleRecord]:
    return [SampleRecord.model_validate_json(line) for line in (output_dir / SAMPLES_FILE).read_text().splitlines()]


def scores(results: ResultsFile) -> dict[str, float]:
    return {name: task.metrics["score"].scores["score"].value for name, task in results.results.tasks.items()}


def test_labels_and_both_ls_forms(image: str, tmp_path: Path) -> None:
    labels = docker.from_env().images.get(image).labels
    assert (labels["evals.harness"], labels["evals.harness.version"]) == ("ruler", "26.3")
    assert json.loads(labels["evals.tasks"]) == TASKS
    for args in (["ls"], ["core_evals_ruler", "ls"]):
        finished = run_image(image, args, output_dir=tmp_path)
        assert finished.exit_code == 0, finished.logs
        assert [line for line in finished.logs.splitlines() if line.startswith("* ")] == [
            f"* {task} (in ruler)" for task in TASKS]


def test_chat_4k_with_the_endpoints_tokenizer(image: str, scripted: EndpointServer, tmp_path: Path) -> None:
    finished = run_image(image, run_eval(
        "ruler-4k-chat", f"{scripted.url}/v1/chat/completions", "chat",
        "config.params.limit_samples=2,config.params.parallelism=2,"
        "config.params.extra.subtasks=[niah_single_1,niah_multivalue,cwe]",
        "--api_key_name", "RULER_TEST_KEY", "--offline"), output_dir=tmp_path, env={"RULER_TEST_KEY": KEY})
    assert finished.exit_code == 0, finished.logs
    results = results_of(tmp_path)
    assert scores(results) == pytest.approx({"niah_single_1_4000": 0.5, "niah_multivalue_4000": 0.75,
                                             "cwe_4000": 0.25})
    assert results.results.groups["ruler_4000"].metrics["score"].scores["score"].value == pytest.approx(0.5)
    niah = results.results.tasks["niah_single_1_4000"]
    assert niah.samples is not None and niah.samples.model_dump() == {"scored": 2, "unscored": 0, "error": 0}
    assert niah.metrics["score"].scores["score"].stats.ci95 is not None
    records = {(r.task, r.sample_id.split("#")[0]): r for r in samples_of(tmp_path)}
    assert len(records) == 6
    first = records[("niah_single_1_4000", "0")]
    assert (first.target, first.scores, first.status) == (["4612365"], {"score": 1.0}, "scored")
    assert first.prediction == "The special magic number for determined-envelope is 4612365."
    assert records[("niah_multivalue_4000", "0")].target == ["4335942", "8038374", "4698379", "8536477"]
    assert records[("cwe_4000", "1")].prediction == "The answer is 10."
    # The input is the chat message as sent, whole (about 3,600 bytes: the byte-level tokenizer sized it), and
    # each record is joined to the proxy's record of its request.
    assert isinstance(first.input, list) and len(first.input) == 1 and isinstance(first.input[0], Message)
    content = first.input[0].content
    assert first.input[0].role == "user" and isinstance(content, str)
    assert 3000 < len(content.encode()) <= 4000 - 128 and content.endswith("mentioned in the provided text is")
    assert all(len(r.request_ids) == 1 for r in records.values())
    inference = [r for r in scripted.requests if r.kind == "inference"]
    assert len(inference) == 6 and results.usage is not None and results.usage.requests == 6
    assert {r.header("Authorization") for r in inference} == {f"Bearer {KEY}"}
    assert {(r.body["max_tokens"], r.body["temperature"], r.body["top_p"]) for r in inference} == {
        (128, 0.0, 0.0001), (120, 0.0, 0.0001)}
    assert any(r.kind == "tokenizer" for r in scripted.requests)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(errors="replace"), path


def test_completions_4k_with_a_local_tokenizer(image: str, scripted: EndpointServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    finished = run_image(image, run_eval(
        "ruler-4k-completions", f"{scripted.url}/v1/completions", "completions",
        "config.params.limit_samples=2,config.params.extra.subtasks=[vt,qa_1],"
        "config.params.extra.tokenizer=/data/tokenizer", "--offline"), output_dir=out, data_dir=FIXTURES)
    assert finished.exit_code == 0, finished.logs
    results = results_of(out)
    assert scores(results) == pytest.approx({"vt_4000": 0.4, "qa_1_4000": 0.5})
    assert results.results.groups["ruler_4000"].metrics["score"].scores["score"].value == pytest.approx(0.45)
    records = {(r.task, r.sample_id.split("#")[0]): r for r in samples_of(out)}
    vt = records[("vt_4000", "0")]
    assert vt.target == ["TYFAD", "DROFS", "TEPTC", "VZCAI", "RYKSB"]
    assert (vt.prediction, vt.scores) == ("TYFAD, DROFS, TEPTC, VZCAI, RY", {"score": 0.8})
    assert isinstance(vt.input, str) and vt.input.endswith("5 variables are assgined the value 93104, they are: ")
    assert records[("qa_1_4000", "0")].target == ["France"] * 4
    # No tokenizer request reached the endpoint: the local tokenizer.json sized the contexts.
    assert not [r for r in scripted.requests if r.kind == "tokenizer"]
    assert {r.body["max_tokens"] for r in scripted.requests if r.kind == "inference"} == {30, 32}


def test_no_tokenizer_is_exit_2_naming_the_key_before_any_request(image: str, scripted: EndpointServer,
                                                                 tmp_path: Path) -> None:
    # Under a path prefix the test endpoint serves no /tokenize (it answers 404 there).
    url = f"{scripted.url}/no-tokenizer/v1/chat/completions"
    finished = run_image(image, run_eval("ruler-4k-chat", url, "chat", "config.params.limit_samples=1"),
                         output_dir=tmp_path)
    assert finished.exit_code == 2, finished.logs
    assert "config.params.extra.tokenizer" in finished.logs and "/no-tokenizer/tokenize" in finished.logs
    assert "Traceback" not in finished.logs
    assert not [r for r in scripted.requests if r.kind == "inference"]


@pytest.mark.parametrize("case", [
    ("ruler-4k-chat", "config.params.extra.tokenizer=meta-llama/Llama-3.1-8B-Instruct",
     "never downloads a tokenizer from the Hugging Face Hub"),
    ("ruler-chat", "config.params.limit_samples=1", "config.params.extra.max_seq_length is required"),
    ("ruler-4k-chat", "config.params.extra.subtasks=niah_single_9", "unknown RULER task(s) niah_single_9"),
    ("ruler-128k-chat", "config.params.limit_samples=1", "more than the endpoint's max_model_len 65536"),
])
def test_bad_input_is_exit_2_before_any_request(image: str, scripted: EndpointServer, tmp_path: Path,
                                                case: tuple[str, str, str]) -> None:
    task, overrides, message = case
    finished = run_image(image, run_eval(task, f"{scripted.url}/v1/chat/completions", "chat", overrides),
                         output_dir=tmp_path)
    assert finished.exit_code == 2, finished.logs
    assert message in finished.logs
    assert "Traceback" not in finished.logs
    assert not [r for r in scripted.requests if r.kind == "inference"]

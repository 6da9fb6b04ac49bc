"""The bfcl image, run as a user would: `docker run IMAGE ls|run_eval ...` against the test endpoint's scripted replies
(images/bfcl/fixtures/*.json) on real BFCL v3 entries shipped in nvidia-bfcl 26.3.

Expected scores, worked out from the package's data (data/BFCL_v3_<category>.json, possible_answer/...):

native function calling, bfclv3_simple, 4 entries (fixtures/native.json):
  simple_0 calculate_triangle_area(base=10, height=5)   ground truth base 10, height 5, unit optional   right
  simple_1 math_factorial(number=5)                     math.factorial, number 5 (BFCL maps _ back to .)  right
  simple_2 math_hypot(x=4, y=6)                         math.hypot x 4, y 5                              wrong
  simple_3 (no rule: the endpoint's sentence, no tool call)                                              unscored
  -> simple accuracy 2/4

prompting, bfclv2_ast_prompting (13 AST categories), 2 entries each (fixtures/prompting.json); an entry without a
rule gets "This is a deterministic test response.", which BFCL cannot parse as calls: wrong, except in the
irrelevance categories, where no call is the right answer:
  simple 1/2 (simple_0 right, simple_1 factorial of 6 instead of 5), irrelevance 1/2 (irrelevance_0 calls a
  function it should not), parallel 1/2 (parallel_0 both spotify.play calls), java 1/2 (java_0 in Java syntax),
  live_simple 1/2 (live_simple_0-0-0), live_relevance 1/2 (live_relevance_0-0-0 makes a call), live_irrelevance
  2/2, the other six 0/2  -> 8 of 26 overall
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import yaml

from orchestrator.schema.container import RESULTS_DIR
from orchestrator.schema.results import ResultsFile
from orchestrator.schema.samples import SAMPLES_FILE, SampleRecord
from tests.endpoint.script import load_script
from tests.endpoint.server import EndpointServer, serve
from tests.integration.harness import run_image

pytestmark = pytest.mark.docker

IMAGE = os.environ.get("EVALS_BFCL_IMAGE", "evals/bfcl:latest")
FIXTURES = Path(__file__).resolve().parents[2] / "images" / "bfcl" / "fixtures"
TASKS = ["bfclv3", "bfclv3_ast", "bfclv3_ast_prompting", "bfclv2", "bfclv2_ast", "bfclv2_ast_prompting"]
KEY = "sk-bfcl-integration-42"


@pytest.fixture(scope="module")
def bfcl_image() -> str:
    engine = docker.from_env()
    try:
        engine.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{IMAGE} is not built; run `bash scripts/build-image.sh bfcl`")
    return IMAGE


def scripted(name: str) -> Iterator[EndpointServer]:
    with serve(script=load_script(FIXTURES / name), quiet=True) as server:
        yield server


@pytest.fixture
def native_endpoint() -> Iterator[EndpointServer]:
    yield from scripted("native.json")


@pytest.fixture
def prompting_endpoint() -> Iterator[EndpointServer]:
    yield from scripted("prompting.json")


def run_task(image: str, task: str, endpoint: EndpointServer | None, tmp_path: Path, overrides: str,
             *, env: dict[str, str] | None = None, key: bool = False) -> tuple[int, str]:
    url = f"{endpoint.url}/v1/chat/completions" if endpoint else "http://127.0.0.1:9/v1/chat/completions"
    args = ["run_eval", "--eval_type", task, "--model_id", endpoint.model if endpoint else "m", "--model_url", url,
            "--model_type", "chat", "--output_dir", RESULTS_DIR, "--overrides", overrides]
    if key:
        args += ["--api_key_name", "BFCL_TEST_KEY"]
    finished = run_image(image, args, output_dir=tmp_path, env=env, timeout=300)
    return finished.exit_code, finished.logs


def results_of(output_dir: Path) -> ResultsFile:
    return ResultsFile.model_validate(yaml.safe_load((output_dir / "results.yml").read_text()))


def accuracy(results: ResultsFile, task: str) -> float:
    return results.results.tasks[task].metrics["accuracy"].scores["accuracy"].value


def samples_of(output_dir: Path) -> list[SampleRecord]:
    return [SampleRecord.model_validate_json(line) for line in (output_dir / SAMPLES_FILE).read_text().splitlines()]


def test_labels_user_size_and_ls(bfcl_image: str, tmp_path: Path) -> None:
    image = docker.from_env().images.get(bfcl_image)
    assert image.labels["evals.harness"] == "bfcl" and image.labels["evals.harness.version"] == "26.3"
    assert set(TASKS) <= set(json.loads(image.labels["evals.tasks"]))
    assert image.attrs["Config"]["User"] not in ("", "0", "root", "0:0")
    assert image.attrs["Size"] < 1_000_000_000
    finished = run_image(bfcl_image, ["core_evals_bfcl", "ls"], output_dir=tmp_path)
    assert finished.exit_code == 0, finished.logs
    assert all(f"* {task} (in bfcl)" in finished.logs.splitlines() for task in TASKS)


def test_native_function_calling_scores_tool_calls(bfcl_image: str, native_endpoint: EndpointServer,
                                                   tmp_path: Path) -> None:
    code, logs = run_task(bfcl_image, "bfclv3_simple", native_endpoint, tmp_path,
                          "config.params.limit_samples=4,config.params.parallelism=2",
                          env={"BFCL_TEST_KEY": KEY}, key=True)
    assert code == 0, logs
    results = results_of(tmp_path)
    assert accuracy(results, "simple") == 0.5
    assert results.results.groups["bfcl"].metrics["accuracy"].scores["accuracy"].value == 0.5
    records = samples_of(tmp_path)
    assert [(r.sample_id.split("#")[0], r.status, r.scores) for r in records] == [
        ("simple_0", "scored", {"accuracy": 1.0}), ("simple_1", "scored", {"accuracy": 1.0}),
        ("simple_2", "scored", {"accuracy": 0.0}), ("simple_3", "unscored", {"accuracy": 0.0})]
    assert records[1].target == [{"math.factorial": {"number": [5]}}]
    assert all(len(r.request_ids) == 1 for r in records)  # joined to the proxy's records by the messages sent
    stats = results.results.tasks["simple"].samples
    assert stats is not None and (stats.scored, stats.unscored, stats.error) == (3, 1, 0)
    # The tools went through the proxy to the endpoint, named as OpenAI allows (math.factorial -> math_factorial).
    bodies = [r.body for r in native_endpoint.requests if r.kind == "inference"]
    assert len(bodies) == 4 and all(isinstance(b, dict) and b.get("tools") for b in bodies)
    names = {t["function"]["name"] for b in bodies if isinstance(b, dict) for t in b["tools"]}
    assert {"calculate_triangle_area", "math_factorial", "math_hypot"} <= names
    assert {r.header("Authorization") for r in native_endpoint.requests if r.kind == "inference"} == {f"Bearer {KEY}"}
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(errors="replace"), path


def test_prompting_scores_the_text_bfcl_parses(bfcl_image: str, prompting_endpoint: EndpointServer,
                                               tmp_path: Path) -> None:
    code, logs = run_task(bfcl_image, "bfclv2_ast_prompting", prompting_endpoint, tmp_path,
                          "config.params.limit_samples=2,config.params.max_new_tokens=128")
    assert code == 0, logs
    results = results_of(tmp_path)
    expected = {"simple": 0.5, "irrelevance": 0.5, "parallel": 0.5, "java": 0.5, "live_simple": 0.5,
                "live_relevance": 0.5, "live_irrelevance": 1.0, "multiple": 0.0, "parallel_multiple": 0.0,
                "javascript": 0.0, "live_multiple": 0.0, "live_parallel": 0.0, "live_parallel_multiple": 0.0}
    assert {task: accuracy(results, task) for task in results.results.tasks} == expected
    overall = results.results.groups["bfcl"].metrics["accuracy"].scores["accuracy"]
    assert overall.value == pytest.approx(8 / 26) and overall.stats.count == 26
    records = samples_of(tmp_path)
    assert len(records) == 26 and sum(r.scores["accuracy"] for r in records) == 8
    # prompted: no tools in the request; the functions are in the system prompt BFCL writes
    bodies = [r.body for r in prompting_endpoint.requests if r.kind == "inference"]
    assert len(bodies) == 26 and all(isinstance(b, dict) and "tools" not in b for b in bodies)
    assert all(isinstance(b, dict) and b["max_tokens"] == 128 and b["messages"][0]["role"] == "system"
               for b in bodies)
    first = next(r for r in records if r.sample_id.startswith("simple_0#"))
    assert first.prediction == "[calculate_triangle_area(base=10, height=5)]" and first.scores == {"accuracy": 1.0}


@pytest.mark.parametrize(("task", "named"), [("bfcl.exec_simple", "'exec_simple'"), ("bfcl.rest", "'rest'"),
                                             ("bfcl.executable", "'executable'")])
def test_unavailable_category_is_exit_2_before_any_request(bfcl_image: str, native_endpoint: EndpointServer,
                                                           tmp_path: Path, task: str, named: str) -> None:
    code, logs = run_task(bfcl_image, task, native_endpoint, tmp_path, "config.params.limit_samples=1")
    assert code == 2, logs
    assert named in logs and "live public web APIs" in logs
    assert [r for r in native_endpoint.requests if r.kind == "inference"] == []

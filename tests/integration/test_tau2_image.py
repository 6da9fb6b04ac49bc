"""The tau2 image, run as a user would: `docker run IMAGE ls|run_eval ...`, offline, on the package's mock domain, the
model under test and the user simulator each a scripted test endpoint (images/tau2/fixtures/mock.json, one script
for both: each role only ever sees the other's lines).

The conversation every episode has (the agent opens with tau2's fixed greeting, no request):
  agent  "Hi! How can I help you today?"
  user   "Please create a task called 'Important Meeting' for user_1."      (user simulator, rule 1)
  agent  create_task(user_id=user_1, title=Important Meeting)                (model, rule 2: a tool call)
  tool   {"task_id": "task_2", ...}                                          (the mock domain's DB: one task before)
  agent  "Done: task_2 'Important Meeting' is created for user_1."           (model, rule 3: after the tool result)
  user   "Thank you, that is all. ###STOP###"                                (user simulator, rule 4): user_stop
  -> 6 messages, termination user_stop.

Expected rewards, worked out from the mock domain's tasks.json and db.json (tau2's evaluator, EvaluationType.ALL):
  create_task_1                       gold action create_task(user_1, Important Meeting): DB equal; COMMUNICATE has
                                      nothing to check                                                      -> 1
  create_task_1_with_env_assertions   same DB, and assert_task_status(task_2, pending) holds                -> 1
  create_task_1_nl_eval               only NL assertions (not part of tau2's default evaluation, no judge):
                                      no actions and no env assertions, so the DB check is 1                -> 1
  update_task_1                       gold update_task_status(task_1, completed): task_1 still pending and a
                                      task_2 more: DB differs                                               -> 0
  limit 4 -> pass^1 = reward = 3/4; with 2 trials (the endpoint is deterministic) pass^2 = 3/4 too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import yaml

from orchestrator.schema.container import RESULTS_DIR
from orchestrator.schema.results import ResultsFile
from orchestrator.schema.samples import SAMPLES_FILE, SampleRecord
from tests.endpoint.script import load_script
from tests.endpoint.server import EndpointServer, serve
from tests.integration.harness import Finished, run_image

pytestmark = pytest.mark.docker

HARNESS = Path(__file__).resolve().parents[2] / "images" / "tau2"
SCRIPT = HARNESS / "fixtures" / "mock.json"
IMAGE = os.environ.get("EVALS_TAU2_IMAGE", "evals/tau2:latest")
TASKS = ["tau2_bench_telecom", "tau2_bench_airline", "tau2_bench_retail", "tau2_bench_mock"]
AGENT_KEY, USER_KEY = "sk-tau2-agent-31", "sk-tau2-user-47"
EPISODES = [("create_task_1", 1.0), ("create_task_1_with_env_assertions", 1.0), ("create_task_1_nl_eval", 1.0),
            ("update_task_1", 0.0)]


@pytest.fixture(scope="module")
def image() -> str:
    try:
        docker.from_env().images.get(IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{IMAGE} is not built; run `bash scripts/build-image.sh tau2`")
    except docker.errors.DockerException as err:
        pytest.fail(f"integration tests need a Docker engine ({err})")
    return IMAGE


@pytest.fixture
def agent() -> Iterator[EndpointServer]:
    with serve(model="agent-model", script=load_script(SCRIPT)) as server:
        yield server


@pytest.fixture
def user() -> Iterator[EndpointServer]:
    with serve(model="user-model", script=load_script(SCRIPT)) as server:
        yield server


def run_config(out: Path, user: EndpointServer | None, **params: Any) -> None:
    extra: dict[str, Any] = {"n_samples": 1}
    if user is not None:
        extra["user_simulator"] = {"url": f"{user.url}/v1/chat/completions", "model_id": user.model,
                                   "api_key": "TAU2_USER_KEY"}
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.yml").write_text(yaml.safe_dump({"config": {"params": {
        "limit_samples": 4, "parallelism": 1, "max_new_tokens": 64, **params,
        "extra": {**extra, **params.pop("extra", {})}}}}))


def run_mock(image: str, agent: EndpointServer, out: Path, *, env: dict[str, str] | None = None) -> Finished:
    args = ["run_eval", "--eval_type", "tau2_bench_mock", "--model_id", agent.model, "--model_url",
            f"{agent.url}/v1/chat/completions", "--model_type", "chat", "--output_dir", RESULTS_DIR,
            "--api_key_name", "TAU2_AGENT_KEY", "--run_config", f"{RESULTS_DIR}/run.yml"]
    keys = {"TAU2_AGENT_KEY": AGENT_KEY, "TAU2_USER_KEY": USER_KEY}
    return run_image(image, args, output_dir=out, env=keys if env is None else env, timeout=240)


def inference(server: EndpointServer) -> list[Any]:
    return [r for r in server.requests if r.kind == "inference"]


def score(results: ResultsFile, metric: str) -> float:
    return results.results.tasks["tau2_bench_mock"].metrics[metric].scores[metric].value


def test_labels_user_size_and_ls(image: str, tmp_path: Path) -> None:
    built = docker.from_env().images.get(image)
    assert built.labels["evals.harness"] == "tau2" and built.labels["evals.harness.version"] == "26.3"
    assert set(TASKS) == set(json.loads(built.labels["evals.tasks"]))
    assert built.attrs["Config"]["User"] not in ("", "0", "root", "0:0")
    assert built.attrs["Size"] < 1_000_000_000
    finished = run_image(image, ["core_evals_tau2", "ls"], output_dir=tmp_path)
    assert finished.exit_code == 0, finished.logs
    assert all(f"* {task} (in tau2)" in finished.logs.splitlines() for task in TASKS)


def test_mock_domain_end_to_end(image: str, agent: EndpointServer, user: EndpointServer, tmp_path: Path) -> None:
    run_config(tmp_path, user, extra={"n_samples": 2})
    finished = run_mock(image, agent, tmp_path)
    assert finished.exit_code == 0, finished.logs[-4000:]
    results = ResultsFile.model_validate(yaml.safe_load((tmp_path / "results.yml").read_text()))
    assert (score(results, "pass^1"), score(results, "reward"), score(results, "pass^2")) == (0.75, 0.75, 0.75)
    pass1 = results.results.tasks["tau2_bench_mock"].metrics["pass^1"].scores["pass^1"].stats
    assert pass1.count == 4 and pass1.ci95 is not None
    records = [SampleRecord.model_validate_json(line)
               for line in (tmp_path / SAMPLES_FILE).read_text().splitlines()]
    assert sorted((r.sample_id.split("#")[0], r.repeat, r.scores["reward"]) for r in records) == sorted(
        (task, trial, reward) for task, reward in EPISODES for trial in (0, 1))
    summaries = [json.loads(r.prediction or "{}") for r in records]
    assert {(s["termination_reason"], s["messages"]) for s in summaries} == {("user_stop", 6)}
    assert all(r.status == "scored" and r.scores["pass^1"] == r.scores["reward"] for r in records)
    # The model got the domain's tools and the tool result; each side its own key, model id and proxy.
    asked = inference(agent)
    assert asked and all(r.body["model"] == "agent-model" for r in asked)
    assert {r.header("Authorization") for r in asked} == {f"Bearer {AGENT_KEY}"}
    assert all("create_task" in {t["function"]["name"] for t in r.body["tools"]} for r in asked)
    assert any(m["role"] == "tool" and "task_2" in m["content"] for r in asked for m in r.body["messages"])
    told = inference(user)
    assert told and all(r.body["model"] == "user-model" and not r.body.get("tools") for r in told)
    assert {r.header("Authorization") for r in told} == {f"Bearer {USER_KEY}"}
    # 8 episodes, 2 model turns and 2 user turns each, through their proxies (cache hits included).
    assert results.usage is not None and results.usage.requests == 16
    assert results.usage_by_role["user_simulator"].requests == 16
    written = "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())
    assert AGENT_KEY not in written and USER_KEY not in written


def test_no_user_simulator_names_the_keys(image: str, agent: EndpointServer, tmp_path: Path) -> None:
    run_config(tmp_path, None)
    finished = run_mock(image, agent, tmp_path)
    assert finished.exit_code == 2, finished.logs[-3000:]
    assert "Traceback" not in finished.logs
    assert "config.params.extra.user_simulator.url" in finished.logs and ".model_id" in finished.logs
    assert inference(agent) == []


def test_unset_user_key_stops_before_any_request(image: str, agent: EndpointServer, user: EndpointServer,
                                                 tmp_path: Path) -> None:
    run_config(tmp_path, user)
    finished = run_mock(image, agent, tmp_path, env={"TAU2_AGENT_KEY": AGENT_KEY})
    assert finished.exit_code == 2, finished.logs[-3000:]
    assert "Traceback" not in finished.logs
    assert "TAU2_USER_KEY" in finished.logs and "user_simulator.api_key" in finished.logs
    assert inference(agent) == [] and inference(user) == []


def test_an_unreachable_model_is_an_error_per_episode_not_a_wrong_answer(image: str, user: EndpointServer,
                                                                         tmp_path: Path) -> None:
    """Every request to the model fails (nothing listens; the proxy makes one attempt): each episode is tau2's failed
    episode, status error in samples.jsonl; both files are written and the run fails on max_error_fraction."""
    run_config(tmp_path, user, limit_samples=2, max_retries=0)
    args = ["run_eval", "--eval_type", "tau2_bench_mock", "--model_id", "m", "--model_url",
            "http://127.0.0.1:9/v1/chat/completions", "--model_type", "chat", "--output_dir", RESULTS_DIR,
            "--run_config", f"{RESULTS_DIR}/run.yml"]
    finished = run_image(image, args, output_dir=tmp_path, env={"TAU2_USER_KEY": USER_KEY}, timeout=240)
    assert finished.exit_code != 0 and "Traceback" not in finished.logs.split("core_evals_tau2:")[-1]
    records = [SampleRecord.model_validate_json(line)
               for line in (tmp_path / SAMPLES_FILE).read_text().splitlines()]
    assert [(r.sample_id.split("#")[0], r.status, r.scores) for r in records] == [
        ("create_task_1", "error", {}), ("create_task_1_with_env_assertions", "error", {})]
    results = ResultsFile.model_validate(yaml.safe_load((tmp_path / "results.yml").read_text()))
    assert score(results, "pass^1") == 0.0 and results.usage is not None and results.usage.failed_requests == 2
    # The user simulator answered each greeting; the two tasks' scenarios are the same text, so its proxy's cache
    # answered the second; the model never answered.
    assert results.usage_by_role["user_simulator"].requests == 2 and len(inference(user)) == 1

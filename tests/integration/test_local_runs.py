"""The local executor's lifecycle on the real engine: a recorded run, queried and cancelled from other processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import docker
import yaml

from tests.endpoint.server import EndpointServer
from tests.integration.conftest import DATA
from tests.integration.expected import gsm8k_flexible
from tests.integration.gate import Gate

EVALS = [sys.executable, "-m", "orchestrator.host.cli"]


def base(url: str, out: Path) -> list[str]:
    return [*EVALS, "run", "--model_id", "test-model", "--model_url", f"{url}/v1/chat/completions",
            "--model_type", "chat", "--data_dir", str(DATA), "--output_dir", str(out)]


def test_cancel_of_a_running_local_run_from_another_shell(lm_eval_image: str, engine: docker.DockerClient,
                                                          endpoint: EndpointServer, tmp_path: Path) -> None:
    env = {**os.environ, "EVALS_STATE_DIR": str(tmp_path / "state")}
    with Gate(endpoint.url, answer_first=1) as gate:
        args = [*base(gate.url, tmp_path / "out"), "--eval_type", "lm-eval.gsm8k_sample", "--eval_type",
                "lm-eval.arc_challenge_sample", "--overrides",
                "config.params.limit_samples=3,config.params.parallelism=1,config.params.request_timeout=600",
                "--max_parallel", "1"]
        running = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 240
        while gate.held == 0:
            assert running.poll() is None and time.monotonic() < deadline, "the run never reached its 2nd request"
            time.sleep(0.5)
        status = subprocess.run([*EVALS, "status", "--json"], env=env, capture_output=True, text=True, check=False)
        run = json.loads(status.stdout)
        assert [t["state"] for t in run["tasks"]] == ["running", "pending"] and run["pid"] == running.pid
        cancel = subprocess.run([*EVALS, "cancel", run["id"]], env=env, capture_output=True, text=True, check=False)
        assert cancel.returncode == 0, cancel.stderr
        _, err = running.communicate(timeout=60)
    assert running.returncode == 1 and "cancelled" in err
    assert engine.containers.list(all=True, filters={"label": f"evals.run.id={run['id']}"}) == []
    final = json.loads(subprocess.run([*EVALS, "status", run["id"], "--json"], env=env, capture_output=True,
                                      text=True, check=False).stdout)
    assert [t["state"] for t in final["tasks"]] == ["cancelled", "cancelled"]


def test_a_local_run_is_recorded_and_resumable(lm_eval_image: str, endpoint: EndpointServer, tmp_path: Path) -> None:
    env = {**os.environ, "EVALS_STATE_DIR": str(tmp_path / "state")}
    args = [*base(endpoint.url, tmp_path / "out"), "--eval_type", "lm-eval.gsm8k_sample", "--overrides",
            "config.params.limit_samples=2"]
    first = subprocess.run(args, env=env, capture_output=True, text=True, check=False, timeout=600)
    assert first.returncode == 0, first.stderr
    run = json.loads(subprocess.run([*EVALS, "status", "--json"], env=env, capture_output=True, text=True,
                                    check=False).stdout)
    assert run["executor"] == "local" and run["tasks"][0]["state"] == "succeeded"
    status = subprocess.run([*EVALS, "status", run["id"]], env=env, capture_output=True, text=True, check=False)
    assert f"{gsm8k_flexible(2):.4f}" in status.stdout
    logs = subprocess.run([*EVALS, "logs", run["id"]], env=env, capture_output=True, text=True, check=False)
    assert "Results written to /workspace/results/results.yml" in logs.stdout
    again = subprocess.run([*EVALS, "resubmit", run["id"]], env=env, capture_output=True, text=True, check=False)
    assert again.returncode == 2 and "every task succeeded" in again.stderr


def test_a_result_records_its_image_and_runs_again_from_it(lm_eval_image: str, engine: docker.DockerClient,
                                                           endpoint: EndpointServer, tmp_path: Path) -> None:
    """On the real engine: results.yml names the image and its content id; --from re-runs exactly that."""
    env = {**os.environ, "EVALS_STATE_DIR": str(tmp_path / "state")}
    args = [*base(endpoint.url, tmp_path / "first"), "--eval_type", "lm-eval.gsm8k_sample", "--overrides",
            "config.params.limit_samples=2"]
    first = subprocess.run(args, env=env, capture_output=True, text=True, check=False, timeout=600)
    assert first.returncode == 0, first.stderr
    recorded = yaml.safe_load((tmp_path / "first" / "results.yml").read_text())
    provenance = recorded["provenance"]
    assert provenance["image"] == lm_eval_image
    assert provenance["image_digest"] == engine.images.get(lm_eval_image).id
    again = subprocess.run([*EVALS, "run", "--from", str(tmp_path / "first" / "results.yml"), "--data_dir", str(DATA),
                            "--output_dir", str(tmp_path / "again")], env=env, capture_output=True, text=True,
                           check=False, timeout=600)
    assert again.returncode == 0, again.stderr
    replayed = yaml.safe_load((tmp_path / "again" / "results.yml").read_text())
    assert replayed["provenance"]["image_digest"] == provenance["image_digest"]
    assert {k: v for k, v in replayed["config"].items() if k != "output_dir"} == {
        k: v for k, v in recorded["config"].items() if k != "output_dir"}
    assert replayed["results"] == recorded["results"]
    gone = dict(recorded, provenance={**provenance, "image_digest": "sha256:" + "0" * 64, "image_repo_digest": None})
    (tmp_path / "gone.yml").write_text(yaml.safe_dump(gone))
    refused = subprocess.run([*EVALS, "run", "--from", str(tmp_path / "gone.yml"), "--dry_run"], env=env,
                             capture_output=True, text=True, check=False, timeout=120)
    assert refused.returncode == 2 and "is not available here" in refused.stderr, refused.stderr

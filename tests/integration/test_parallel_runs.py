"""A parallel local run on the real engine: Ctrl-C stops every container and records the tasks; the resume asks the
endpoint only what it had not answered (the proxy's cache answers the rest)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import docker

from tests.endpoint.server import EndpointServer
from tests.integration.conftest import DATA
from tests.integration.gate import Gate
from tests.integration.test_lm_eval_image import REMOTE_TOKENIZER
from tests.integration.test_local_runs import EVALS

ANSWERED_BEFORE = 2
"""Model calls the gate lets through before holding the rest (so both tasks are mid-way when Ctrl-C comes)."""


def status(env: dict[str, str], run_id: str | None = None) -> dict[str, Any]:
    out = subprocess.run([*EVALS, "status", *([run_id] if run_id else []), "--json"], env=env, capture_output=True,
                         text=True, check=False).stdout
    parsed: dict[str, Any] = json.loads(out)
    return parsed


def test_ctrl_c_of_a_parallel_run_then_resume_from_the_cache(lm_eval_image: str, engine: docker.DockerClient,
                                                             endpoint: EndpointServer, tmp_path: Path) -> None:
    env = {**os.environ, "EVALS_STATE_DIR": str(tmp_path / "state")}
    with Gate(endpoint.url, answer_first=ANSWERED_BEFORE) as gate:
        args = [*EVALS, "run", "--model_id", "test-model", "--model_url", f"{gate.url}/v1/completions",
                "--model_type", "completions", "--data_dir", str(DATA), "--output_dir", str(tmp_path / "out"),
                "--image", lm_eval_image, "--max_parallel", "2",
                "--eval_type", "lm-eval.gsm8k_sample", "--eval_type", "lm-eval.arc_challenge_sample", "--overrides",
                "config.params.limit_samples=3,config.params.parallelism=1,config.params.request_timeout=600,"
                "config.params.max_new_tokens=32," + REMOTE_TOKENIZER]
        running = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 900  # a loaded 2-core machine takes minutes
        while gate.held < 2:  # both tasks wait for an answer: both containers run
            assert running.poll() is None and time.monotonic() < deadline, "the tasks never both reached the gate"
            time.sleep(0.5)
        time.sleep(2.0)  # the proxies' request records are written at most a second apart
        run = status(env)
        assert [t["state"] for t in run["tasks"]] == ["running", "running"]
        running.send_signal(signal.SIGINT)
        _, err = running.communicate(timeout=120)
        assert running.returncode == 130, err
        gate.open(drop_held=True)
        run_id = str(run["id"])
        assert engine.containers.list(all=True, filters={"label": f"evals.run.id={run_id}"}) == []
        stopped = status(env, run_id)
        assert [t["state"] for t in stopped["tasks"]] == ["interrupted", "interrupted"]
        answered = [r for r in endpoint.requests if r.kind == "inference"]
        assert len(answered) == ANSWERED_BEFORE

        resumed = subprocess.run([*EVALS, "run", "--resume", run_id], env=env, capture_output=True, text=True,
                                 check=False, timeout=600)
        assert resumed.returncode == 0, resumed.stderr
    final = status(env, run_id)
    assert [t["state"] for t in final["tasks"]] == ["succeeded", "succeeded"]
    assert [t["attempts"] for t in final["tasks"]] == [2, 2]
    bodies = [json.dumps(r.body, sort_keys=True) for r in endpoint.requests if r.kind == "inference"]
    assert len(bodies) == len(set(bodies)), "the resume asked the endpoint again what it had answered"
    # What was answered came from a cache in the task's output dir: lm-eval's own request cache (it then never asks
    # the proxy: its console log says "Cached requests: N") or the adapter proxy's (a cache_hit request record).
    from_cache = 0
    for task in final["tasks"]:
        lines = (Path(task["output_dir"]) / "logs" / "requests.jsonl").read_text().splitlines()
        from_cache += sum(json.loads(line)["cache_hit"] for line in lines if line.strip())
        from_cache += sum(map(int, re.findall(r"Cached requests: (\d+)", Path(task["log"]).read_text())))
    assert from_cache == ANSWERED_BEFORE

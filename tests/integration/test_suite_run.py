"""`evals run --suite` on the real engine: 2 models (two test endpoints) x 2 tasks of the lm-eval image, end to end,
then summary.yml and the table tasks x models (printed at the end and by `evals show RUN_ID`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.endpoint.server import serve
from tests.integration.conftest import DATA
from tests.integration.expected import arc_scores, gsm8k_flexible

EVALS = [sys.executable, "-m", "orchestrator.host.cli"]
REMOTE_TOKENIZER = "config.params.extra.tokenizer_backend=remote,config.params.extra.tokenized_requests=true"
LIMIT = 2

pytestmark = pytest.mark.docker


def test_a_two_by_two_suite_runs_every_pair_and_summarises_them(lm_eval_image: str, tmp_path: Path) -> None:
    with serve(model="model-a") as first, serve(model="model-b") as second:
        suite = {
            "name": "two-by-two",
            "defaults": {"config": {"params": {"limit_samples": LIMIT, "parallelism": 4}}},
            "models": [{"name": "a", "url": f"{first.url}/v1/completions", "model_type": "completions",
                        "model_id": "model-a", "max_parallel_requests": 1},
                       {"name": "b", "url": f"{second.url}/v1/completions", "model_type": "completions",
                        "model_id": "model-b"}],
            "tasks": [{"eval_type": "lm-eval.gsm8k_sample", "data_dir": str(DATA)},
                      {"eval_type": "lm-eval.arc_challenge_sample", "data_dir": str(DATA),
                       "overrides": REMOTE_TOKENIZER}],
        }
        path = tmp_path / "suite.yml"
        path.write_text(yaml.safe_dump(suite))
        env = {**os.environ, "EVALS_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "200"}
        finished = subprocess.run([*EVALS, "run", "--suite", str(path), "--output_dir", str(tmp_path / "out")],
                                  env=env, capture_output=True, text=True, check=False, timeout=900)
    assert finished.returncode == 0, finished.stderr[-3000:]
    summary = yaml.safe_load((tmp_path / "out" / "summary.yml").read_text())
    assert summary["suite"] == "two-by-two" and summary["complete"] is True and summary["models"] == ["a", "b"]
    pairs = {(p["model"], p["task"]): p for p in summary["pairs"]}
    assert set(pairs) == {(m, t) for m in "ab" for t in ("gsm8k_sample", "arc_challenge_sample")}
    for (model, task), pair in pairs.items():
        assert pair["state"] == "succeeded"
        assert pair["output_dir"] == str((tmp_path / "out" / model / f"lm-eval-{task}").resolve())
        assert pair["image_digest"] and pair["samples"]["scored"] == LIMIT
        assert pair["usage"]["requests"] > 0
        resolved = yaml.safe_load(Path(pair["resolved_config"]).read_text())
        assert resolved["target"]["api_endpoint"]["model_id"] == f"model-{model}"
        assert resolved["config"]["params"]["parallelism"] == (1 if model == "a" else 4)  # clipped to the limit
    acc, _ = arc_scores(LIMIT)
    scores = {s["name"]: s for s in pairs["a", "arc_challenge_sample"]["scores"]}
    assert scores["acc"]["value"] == pytest.approx(acc)
    assert scores["acc"]["ci_lower"] <= acc <= scores["acc"]["ci_upper"]
    flexible = f"{gsm8k_flexible(LIMIT):.4f}"
    row = next(line for line in finished.stdout.splitlines()  # the table's row, not the harness's own console table
               if "lm-eval.gsm8k_sample" in line and "flexible" in line)
    assert row.count(flexible) == 2 and "±" in row
    shown = subprocess.run([*EVALS, "show", summary["run_id"]], env=env, capture_output=True, text=True,
                           check=False)
    assert shown.returncode == 0, shown.stderr
    assert re.search(rf"arc_challenge_sample\s.*acc\s.*{acc:.4f} ±.*{acc:.4f} ±", shown.stdout)

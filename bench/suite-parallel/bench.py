"""The suite-speedup benchmark (issue 18): one `evals run` of 8 short tasks against the test endpoint answering in
50 ms, with ``--max_parallel 4`` and with ``--max_parallel 1``, in the same session. Goal: at most 0.35x the wall
time of one after another.

    python3 bench/suite-parallel/bench.py                      # both, 1 round; writes RESULTS.md and RESULTS.json
    python3 bench/suite-parallel/bench.py --rounds 2 --parallel 4 2 1

Needs the lm-eval, aiperf and ruler images (``EVALS_REGISTRY`` prefixes their names, as the build scripts do). Standard
library and project code only; the endpoint is ``tests/endpoint`` in this process (its own threads).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.endpoint.server import serve  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = REPO / "tests" / "fixtures" / "data"
TASKS = ["lm-eval.gsm8k_sample", "lm-eval.arc_challenge_sample", "lm-eval.mmlu_sample", "lm-eval.humaneval_offline",
         "lm-eval.ifbench", "aiperf.aiperf_completions", "aiperf.aiperf_completions_stream",
         "ruler.ruler-4k-completions"]
"""Eight tasks of three harnesses that run offline against a completions endpoint (the test data, or the images')."""
OVERRIDES = ("config.params.limit_samples=5,config.params.max_new_tokens=32,config.params.parallelism=1,"
             "config.params.extra.tokenizer_backend=remote,config.params.extra.tokenized_requests=true,"
             "config.params.extra.concurrency=[1],config.params.extra.input_tokens=32,"
             "config.params.extra.subtasks=[niah_single_1]")


def image(harness: str) -> str:
    prefix = os.environ.get("EVALS_REGISTRY")
    return f"{prefix}/evals/{harness}:latest" if prefix else f"evals/{harness}:latest"


def one_run(url: str, parallel: int, work: Path) -> dict[str, object]:
    """One `evals run` of the 8 tasks; its wall time and each task's time in its container."""
    state = work / f"state-{parallel}"
    out = work / f"out-{parallel}-{time.time_ns()}"
    args = [sys.executable, "-m", "orchestrator.host.cli", "run", "--model_id", "test-model", "--model_url",
            f"{url}/v1/completions", "--model_type", "completions", "--data_dir", str(DATA), "--offline",
            "--output_dir", str(out), "--max_parallel", str(parallel), "--overrides", OVERRIDES]
    for task in TASKS:
        args += ["--eval_type", task]
    env = {**os.environ, "EVALS_STATE_DIR": str(state), "PYTHONPATH": str(REPO)}
    load = os.getloadavg()[0]
    start = time.monotonic()
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False, cwd=REPO)
    wall = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"bench: --max_parallel {parallel} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    runs = sorted((state / "runs").iterdir())
    record = json.loads(subprocess.run([*args[:3], "status", runs[-1].name, "--json"], env=env, capture_output=True,
                                       text=True, check=True, cwd=REPO).stdout)
    tasks = {t["task"]: (datetime.fromisoformat(t["finished_at"]) - datetime.fromisoformat(t["started_at"]))
             .total_seconds() for t in record["tasks"]}
    return {"max_parallel": parallel, "wall_s": round(wall, 2), "load_before": load,
            "task_s": {k: round(v, 2) for k, v in tasks.items()}, "sum_task_s": round(sum(tasks.values()), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parallel", type=int, nargs="+", default=[4, 1])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--delay", type=float, default=0.05)
    options = parser.parse_args()
    if os.environ.get("EVALS_REGISTRY"):
        os.environ.setdefault("EVALS_LM_EVAL_IMAGE", image("lm-eval"))
    cells: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="suite-parallel-") as tmp, serve(delay=options.delay) as endpoint:
        for _ in range(options.rounds):
            for parallel in options.parallel:
                cell = one_run(endpoint.url, parallel, Path(tmp))
                cells.append(cell)
                print(json.dumps(cell), flush=True)
    best = {p: min(float(str(c["wall_s"])) for c in cells if c["max_parallel"] == p) for p in options.parallel}
    serial = best.get(1)
    result = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.node(),
              "cpus": os.cpu_count(), "delay_s": options.delay, "tasks": TASKS, "overrides": OVERRIDES,
              "cells": cells, "best_wall_s": best,
              "ratio_to_serial": {p: round(w / serial, 3) for p, w in best.items()} if serial else {}}
    (HERE / "RESULTS.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| --max_parallel | wall time (s) | x serial | sum of task times (s) | load before |",
             "|---:|---:|---:|---:|---:|"]
    for cell in cells:
        wall = float(str(cell["wall_s"]))
        ratio = f"{wall / serial:.2f}" if serial else "-"
        lines.append(f"| {cell['max_parallel']} | {wall:.1f} | {ratio} | {cell['sum_task_s']} | "
                     f"{float(str(cell['load_before'])):.1f} |")
    (HERE / "RESULTS.md").write_text(f"# suite-parallel, {result['date']} on {result['machine']} "
                                     f"({result['cpus']} CPUs)\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

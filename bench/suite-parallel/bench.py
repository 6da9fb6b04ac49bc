"""The suite-speedup benchmark (issue 18): one `evals run` of 8 short tasks against the test endpoint answering in
50 ms, with ``--max_parallel 4`` and with ``--max_parallel 1``, in the same session. Goal: at most 0.35x the wall
time of one after another. Two configurations of 8 tasks (README.md):

- ``harness-bound``: lm-eval x5, AIPerf x2, RULER x1 with 5 samples each; their time is the harnesses' start-up (CPU).
- ``endpoint-bound``: MMATH in 8 languages with ``--samples`` (400) problems each at parallelism 1; their time is
  mostly waiting on the endpoint's answers, as with any real model.

    python3 bench/suite-parallel/bench.py                      # both configurations, 1 then 4, one round
    python3 bench/suite-parallel/bench.py --rounds 2 --configs endpoint-bound --parallel 4 2 1

Needs the lm-eval, aiperf, ruler and mmath images (``EVALS_REGISTRY`` prefixes their names, as the build scripts
do). Standard library and project code only; the endpoint is ``tests/endpoint`` in this process (its own threads).
Writes RESULTS.md and RESULTS.json (every cell, each task's time in its container).
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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.endpoint.server import serve  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = REPO / "tests" / "fixtures" / "data"


@dataclass(frozen=True)
class Configuration:
    """Eight tasks of one kind, the endpoint type they call and the overrides they all take."""

    tasks: list[str]
    model_type: str
    path: str
    overrides: str


HARNESS_BOUND = Configuration(
    tasks=["lm-eval.gsm8k_sample", "lm-eval.arc_challenge_sample", "lm-eval.mmlu_sample", "lm-eval.humaneval_offline",
           "lm-eval.ifbench", "aiperf.aiperf_completions", "aiperf.aiperf_completions_stream",
           "ruler.ruler-4k-completions"],
    model_type="completions", path="/v1/completions",
    overrides=("config.params.limit_samples=5,config.params.max_new_tokens=32,config.params.parallelism=1,"
               "config.params.extra.tokenizer_backend=remote,config.params.extra.tokenized_requests=true,"
               "config.params.extra.concurrency=[1],config.params.extra.input_tokens=32,"
               "config.params.extra.subtasks=[niah_single_1]"))
"""Three harnesses that run offline against a completions endpoint (the test data, or the images')."""


def endpoint_bound(samples: int) -> Configuration:
    """MMATH (data in the image, the fastest image to start) in 8 languages: 8 different tasks, so no answer is
    shared between them even by prompt; ``samples`` problems each, one request at a time."""
    return Configuration(
        tasks=[f"mmath.mmath_{lang}" for lang in ("en", "zh", "ar", "es", "fr", "ja", "ko", "pt")],
        model_type="chat", path="/v1/chat/completions",
        overrides=f"config.params.limit_samples={samples},config.params.max_new_tokens=32,config.params.parallelism=1")


def one_run(url: str, configuration: Configuration, parallel: int, work: Path) -> dict[str, object]:
    """One `evals run` of the 8 tasks, in a fresh state dir and fresh output dirs (so a fresh proxy cache per task);
    its wall time and each task's time in its container."""
    state = work / f"state-{time.time_ns()}"
    out = work / f"out-{time.time_ns()}"
    args = [sys.executable, "-m", "orchestrator.host.cli", "run", "--model_id", "test-model", "--model_url",
            f"{url}{configuration.path}", "--model_type", configuration.model_type, "--data_dir", str(DATA),
            "--offline", "--output_dir", str(out), "--max_parallel", str(parallel),
            "--overrides", configuration.overrides]
    for task in configuration.tasks:
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
    return {"max_parallel": parallel, "wall_s": round(wall, 2), "load_before": round(load, 2),
            "task_s": {k: round(v, 2) for k, v in tasks.items()}, "sum_task_s": round(sum(tasks.values()), 2)}


def summary(cells: list[dict[str, object]], parallels: list[int]) -> dict[str, object]:
    """Each ``--max_parallel``'s best wall time and its ratio to the best at 1."""
    best = {p: min(float(str(c["wall_s"])) for c in cells if c["max_parallel"] == p)
            for p in parallels if any(c["max_parallel"] == p for c in cells)}
    serial = best.get(1)
    ratios = {p: round(w / serial, 3) for p, w in best.items()} if serial else {}
    return {"best_wall_s": best, "ratio_to_serial": ratios}


def table(cells: list[dict[str, object]], serial: float | None) -> list[str]:
    """The cells as a Markdown table, in the order they ran."""
    lines = ["| --max_parallel | wall time (s) | x serial (best 1) | sum of task times (s) | load before |",
             "|---:|---:|---:|---:|---:|"]
    for cell in cells:
        wall = float(str(cell["wall_s"]))
        ratio = f"{wall / serial:.2f}" if serial else "-"
        lines.append(f"| {cell['max_parallel']} | {wall:.1f} | {ratio} | {cell['sum_task_s']} | "
                     f"{float(str(cell['load_before'])):.1f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", choices=["harness-bound", "endpoint-bound"],
                        default=["harness-bound", "endpoint-bound"])
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--samples", type=int, default=400, help="problems per endpoint-bound task")
    options = parser.parse_args()
    configurations = {"harness-bound": HARNESS_BOUND, "endpoint-bound": endpoint_bound(options.samples)}
    cells: dict[str, list[dict[str, object]]] = {name: [] for name in options.configs}
    with tempfile.TemporaryDirectory(prefix="suite-parallel-") as tmp, serve(delay=options.delay) as endpoint:
        for _ in range(options.rounds):
            for name in options.configs:
                for parallel in options.parallel:
                    cell = one_run(endpoint.url, configurations[name], parallel, Path(tmp))
                    cells[name].append(cell)
                    print(json.dumps({"configuration": name, **cell}), flush=True)
                    write(options, {name: configurations[name] for name in options.configs}, cells)


def write(options: argparse.Namespace, configurations: dict[str, Configuration],
          cells: dict[str, list[dict[str, object]]]) -> None:
    """RESULTS.json and RESULTS.md from the cells so far (rewritten after each, so a stopped run keeps them)."""
    result: dict[str, object] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.node(), "cpus": os.cpu_count(),
        "delay_s": options.delay, "parallel": options.parallel, "rounds": options.rounds,
        "configurations": {name: {"tasks": c.tasks, "model_type": c.model_type, "overrides": c.overrides,
                                  "cells": cells[name], **summary(cells[name], options.parallel)}
                           for name, c in configurations.items() if cells[name]}}
    (HERE / "RESULTS.json").write_text(json.dumps(result, indent=2) + "\n")
    text = [f"# suite-parallel, {result['date']} on {result['machine']} ({result['cpus']} CPUs), "
            f"endpoint delay {options.delay} s"]
    for name, configuration in configurations.items():
        if cells[name]:
            serial = summary(cells[name], options.parallel)["best_wall_s"]
            assert isinstance(serial, dict)
            text += ["", f"## {name}", "", f"`{configuration.overrides}`", "", *table(cells[name], serial.get(1))]
    (HERE / "RESULTS.md").write_text("\n".join(text) + "\n")

if __name__ == "__main__":
    main()

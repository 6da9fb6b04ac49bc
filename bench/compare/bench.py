"""`evals compare` of two runs of 5 tasks x 20,000 samples: how long the whole command takes.

    PYTHONPATH=$PWD .venv/bin/python bench/compare/bench.py             # builds the runs once, then times
    PYTHONPATH=$PWD .venv/bin/python bench/compare/bench.py --rounds 9 --scores binary continuous
    PYTHONPATH=$PWD .venv/bin/python bench/compare/bench.py --wait-idle 900   # first wait for a quiet machine

Builds two runs (baseline, candidate) under bench/compare/work/ with samples.jsonl written through SampleRecord
(kept for the next run), then times `python -m orchestrator.host.cli compare A B --json` as a fresh process
(``--rounds`` times; interpreter start and imports included) and, in this process, each step: loading the two runs,
the statistics, rendering. Prints a Markdown table and writes RESULTS.md and RESULTS.json next to this file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from orchestrator.host.compare import render
from orchestrator.host.compare.compare import compare
from orchestrator.host.compare.load import collection_paused, load_run
from orchestrator.schema.loading import dump_yaml, load_model
from orchestrator.schema.results import ResultsFile
from orchestrator.schema.samples import SAMPLES_FILE, SampleRecord, dump_line, sample_id

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
RESULTS = HERE.parents[1] / "tests" / "fixtures" / "results" / "lm_eval_results.yml"
"""A real results.yml, copied beside each task's samples (compare reads its provenance)."""
TASKS = 5
SAMPLES = 20_000
KINDS = {
    "binary": "one 0/1 metric per task (acc): exact McNemar, bootstrap by counts",
    "continuous": "a 0/1 metric and a continuous one (f1, ~all values distinct) per task: permutation test and "
                  "bootstrap by bins",
}


def build(kind: str) -> tuple[Path, Path]:
    """The two runs of one kind (built once; a run with the wrong number of lines is built again)."""
    rng = np.random.default_rng(7)
    paths = (WORK / kind / "baseline", WORK / kind / "candidate")
    for run, drift in zip(paths, (0.0, 0.01), strict=True):
        for task in range(TASKS):
            directory = run / f"lm-eval-task{task}"
            target = directory / SAMPLES_FILE
            if (directory / "results.yml").is_file() and target.is_file() and \
                    sum(1 for _ in target.open("rb")) == SAMPLES:
                continue
            directory.mkdir(parents=True, exist_ok=True)
            results = load_model(ResultsFile, RESULTS)
            (directory / "results.yml").write_text(dump_yaml(results.model_dump(mode="json")), encoding="utf-8")
            right = rng.random(SAMPLES) < 0.62 + drift
            f1 = np.clip(rng.normal(0.55 + drift, 0.2, SAMPLES), 0, 1)
            with target.open("w", encoding="utf-8") as handle:
                for i in range(SAMPLES):
                    scores = {"acc": float(right[i])}
                    if kind == "continuous":
                        scores["f1"] = float(f1[i])
                    document = {"question": f"task {task} question {i}", "answer": str(i)}
                    handle.write(dump_line(SampleRecord(
                        task=f"task{task}", sample_id=sample_id(i, document), status="scored", scores=scores,
                        input=f"Question {i} of task {task}: " + "a fairly long prompt with some context " * 6,
                        target=str(i), prediction=f"Let me think step by step. The answer is {i}. " * 3)))
    return paths


def time_process(a: Path, b: Path, rounds: int) -> tuple[list[float], list[float]]:
    """Wall time and CPU time (user + system, children included) of the whole command in a fresh interpreter."""
    command = [sys.executable, "-m", "orchestrator.host.cli", "compare", str(a), str(b), "--json"]
    walls, cpus = [], []
    for _ in range(rounds):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, check=False)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if done.returncode != 0:
            raise SystemExit(f"evals compare failed: {done.stderr.decode()}")
    return walls, cpus


def time_steps(a: Path, b: Path) -> dict[str, float]:
    """Each step in this process (imports already done)."""
    start = time.perf_counter()
    with collection_paused():  # as the command does
        runs = [load_run(str(a)), load_run(str(b))]
    loaded = time.perf_counter()
    report = compare(runs)
    compared = time.perf_counter()
    render.json_text(report)
    rendered = time.perf_counter()
    return {"load": loaded - start, "statistics": compared - loaded, "render": rendered - compared}


def other_load() -> float:
    """The 1-minute load average (other sessions share this machine)."""
    return os.getloadavg()[0]


def wait_idle(seconds: float, *, below: float = 0.5) -> None:
    """Wait up to ``seconds`` for the 1-minute load average to fall below ``below``."""
    deadline = time.monotonic() + seconds
    while other_load() >= below and time.monotonic() < deadline:
        time.sleep(5)


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="fresh-process timings per kind (default 5)")
    parser.add_argument("--scores", nargs="+", choices=list(KINDS), default=list(KINDS))
    parser.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                        help="first wait up to SECONDS for the 1-minute load average to fall below 0.5")
    args = parser.parse_args()
    results = []
    for kind in args.scores:
        a, b = build(kind)
        wait_idle(args.wait_idle)
        load_before = other_load()
        walls, cpus = time_process(a, b, args.rounds)
        steps = min((time_steps(a, b) for _ in range(3)), key=lambda s: sum(s.values()))
        results.append({"kind": kind, "what": KINDS[kind], "wall_s": walls, "cpu_s": cpus, "best_s": min(walls),
                        "median_s": statistics.median(walls), "cpu_median_s": statistics.median(cpus),
                        "steps_s": steps, "load_average": [load_before, other_load()]})
    write(results)
    return 0


def write(results: list[dict[str, object]]) -> None:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# evals compare: 2 runs x {TASKS} tasks x {SAMPLES:,} samples", "",
             f"{when}; {cpu_name()}, {os.cpu_count()} cores; Python {platform.python_version()}, numpy "
             f"{np.__version__}. Goal: under 2 s.", "",
             "| scores | whole command: best | median | its CPU time (median) | in process: load | statistics | "
             "render | load average before / after |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        steps = r["steps_s"]
        assert isinstance(steps, dict)
        average = r["load_average"]
        assert isinstance(average, list)
        lines.append(f"| {r['kind']}: {r['what']} | {r['best_s']:.2f} s | {r['median_s']:.2f} s | "
                     f"{r['cpu_median_s']:.2f} s | "
                     f"{steps['load']:.2f} s | {steps['statistics']:.2f} s | {steps['render']:.2f} s | "
                     f"{average[0]:.2f} / {average[1]:.2f} |")
    text = "\n".join(lines) + "\n"
    (HERE / "RESULTS.md").write_text(text, encoding="utf-8")
    (HERE / "RESULTS.json").write_text(json.dumps({"when": when, "results": results}, indent=2) + "\n",
                                       encoding="utf-8")
    print(text)


if __name__ == "__main__":
    raise SystemExit(main())

"""Orchestration overhead per task (issue 18: under 1 s added): `evals run` of one task against `docker run` of the
same image with the same command, mounts, user, network and environment.

    python bench/suite/bench.py [--rounds 5] [--image evals/lm-eval:latest]

The task: lm-eval's ``gsm8k_sample`` with ``limit_samples=1`` from the pre-staged test data, against the
deterministic test endpoint (tests/endpoint, in this process, on loopback). Timed, alternating, ``--rounds`` times
each after one warm-up of each:

- ``evals run``: the whole command: interpreter start, imports, the image's labels, resolving, the record, the
  container's start and wait, reading results.yml, the table;
- ``evals run --suite``: the same pair as a one-model, one-task suite (planning, summary.yml, the table);
- ``docker run``: the container alone, as the first ``evals run`` recorded it (its resolved config copied into a
  fresh output directory): the floor.

Overhead = median(evals) - median(docker run). Writes bench/suite/RESULTS.json and prints the table row.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.endpoint.server import serve  # noqa: E402  (the repository's test endpoint)

DATA = REPO / "tests" / "fixtures" / "data"
EVALS = [sys.executable, "-m", "orchestrator.host.cli"]


def load() -> float:
    """The 1-minute load average."""
    return round(os.getloadavg()[0], 2)


def seconds(command: list[str], *, env: dict[str, str]) -> float:
    """Wall seconds of one run of ``command``, which must succeed."""
    start = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    took = time.perf_counter() - start
    if finished.returncode != 0:
        raise SystemExit(f"{command[:4]}... failed ({finished.returncode}): {finished.stderr[-2000:]}")
    return took


def evals_command(url: str, image: str, out: Path) -> list[str]:
    return [*EVALS, "run", "--image", image, "--eval_type", "lm-eval.gsm8k_sample", "--model_type", "completions",
            "--model_id", "test-model", "--model_url", f"{url}/v1/completions", "--data_dir", str(DATA),
            "--output_dir", str(out), "--overrides", "config.params.limit_samples=1"]


def suite_command(url: str, image: str, work: Path, out: Path) -> list[str]:
    suite = {"name": "bench", "defaults": {"config": {"params": {"limit_samples": 1}}},
             "models": [{"name": "m", "url": f"{url}/v1/completions", "model_type": "completions",
                         "model_id": "test-model"}],
             "tasks": [{"eval_type": "lm-eval.gsm8k_sample", "data_dir": str(DATA), "image": image}]}
    path = work / "suite.yml"
    path.write_text(yaml.safe_dump(suite))
    return [*EVALS, "run", "--suite", str(path), "--output_dir", str(out)]


def docker_command(state: Path, out: Path) -> list[str]:
    """`docker run` of the container the latest recorded run started, its output dir replaced by ``out``."""
    runs = sorted((state / "runs").iterdir())
    record = yaml.safe_load((runs[-1] / "run.yml").read_text())
    task = record["tasks"][0]
    container, source = task["container"], Path(task["output_dir"])
    out.mkdir(parents=True)
    shutil.copy(source / "run_config.yml", out / "run_config.yml")
    command = ["docker", "run", "--rm", "--user", f"{os.getuid()}:{os.getgid()}"]
    if container["network_host"]:
        command += ["--network", "host"]
    for mount in container["mounts"]:
        host = Path(mount["source"])
        host = out / host.relative_to(source) if host.is_relative_to(source) else host
        command += ["-v", f"{host}:{mount['target']}" + (":ro" if mount["read_only"] else "")]
    for name, value in container["environment"].items():
        command += ["-e", f"{name}={value}"]
    return [*command, container["image"], *container["args"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--image", default=os.environ.get("EVALS_LM_EVAL_IMAGE", "evals/lm-eval:latest"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-suite-"))
    state = work / "state"
    env = {**os.environ, "EVALS_STATE_DIR": str(state), "PYTHONPATH": str(REPO)}
    times: dict[str, list[float]] = {"evals run": [], "evals run --suite": [], "docker run": []}
    before = load()
    try:
        with serve(quiet=True) as endpoint:
            for round_ in range(args.rounds + 1):  # round 0 warms up each
                runs = {
                    "evals run": evals_command(endpoint.url, args.image, work / f"e{round_}"),
                    "evals run --suite": suite_command(endpoint.url, args.image, work, work / f"s{round_}"),
                }
                took = {name: seconds(command, env=env) for name, command in runs.items()}
                took["docker run"] = seconds(docker_command(state, work / f"d{round_}"), env=env)
                if round_:
                    for name, value in took.items():
                        times[name].append(round(value, 3))
                print(f"round {round_}: " + ", ".join(f"{k} {v:.2f} s" for k, v in took.items()), file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    medians = {name: round(statistics.median(values), 3) for name, values in times.items()}
    overhead = {name: round(medians[name] - medians["docker run"], 3) for name in ("evals run", "evals run --suite")}
    result = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.node(),
              "cpus": os.cpu_count(), "image": args.image, "rounds": args.rounds, "times": times,
              "median": medians, "overhead": overhead, "load_before": before, "load_after": load()}
    (Path(__file__).parent / "RESULTS.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"| {medians['docker run']:.2f} | {medians['evals run']:.2f} | {overhead['evals run']:+.2f} | "
          f"{medians['evals run --suite']:.2f} | {overhead['evals run --suite']:+.2f} | {before}, {load()} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`evals ls` wall time with the harness images on this machine's engine (issue 16: under 1 s with five images).

    python bench/ls/bench.py [--rounds 15] [--synthetic N] [--tasks 88]

Times, each over ``--rounds`` runs (median, min, max): `evals ls` (the whole command: interpreter start, imports,
the engine's image list, every chosen image's framework label decoded and validated, the table), `evals --help`
(the same start and imports, no engine) and `docker image ls --filter label=evals.harness` (the engine's own floor).
``--synthetic N`` adds N label-only harness images (``FROM scratch``, 0 bytes, a framework of ``--tasks`` tasks
made from images/lm-eval/framework.yml) for the run and removes them after, to measure with more harnesses than
are built. Writes bench/ls/RESULTS.json (this run) and prints the table row for README.md.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SYNTHETIC_REPO = "evals-bench/synthetic"
LABEL = "evals.harness"


def timed(command: list[str], *, rounds: int, env: dict[str, str]) -> dict[str, float]:
    """Wall seconds of ``command`` over ``rounds`` runs (after one warm-up run): median, min, max."""
    subprocess.run(command, capture_output=True, check=True, env=env)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True, env=env)
        times.append(time.perf_counter() - start)
    return {"median": round(statistics.median(times), 3), "min": round(min(times), 3), "max": round(max(times), 3)}


def synthetic_framework(index: int, tasks: int) -> str:
    """images/lm-eval/framework.yml renamed ``bench-<index>``, its tasks repeated (renamed) up to ``tasks``."""
    doc = yaml.safe_load((REPO / "images" / "lm-eval" / "framework.yml").read_text())
    doc["framework"]["name"] = f"bench-{index}"
    source = doc["evaluations"]
    evaluations = []
    for n in range(tasks):
        entry = json.loads(json.dumps(source[n % len(source)]))
        entry["defaults"]["config"]["type"] = f"{entry['defaults']['config']['type']}_{n}"
        evaluations.append(entry)
    doc["evaluations"] = evaluations
    return yaml.safe_dump(doc, sort_keys=False)


def build_synthetic(count: int, tasks: int) -> list[str]:
    names = []
    for index in range(count):
        framework = base64.b64encode(synthetic_framework(index, tasks).encode()).decode()
        dockerfile = f'FROM scratch\nLABEL {LABEL}="bench-{index}" evals.framework="{framework}"\n'
        name = f"{SYNTHETIC_REPO}-{index}:latest"
        subprocess.run(["docker", "build", "-q", "-t", name, "-"], input=dockerfile.encode(), check=True,
                       capture_output=True)
        names.append(name)
    return names


def harness_images() -> list[str]:
    listed = subprocess.run(["docker", "image", "ls", "--filter", f"label={LABEL}", "--format",
                             "{{.Repository}}:{{.Tag}} {{.ID}}"], capture_output=True, text=True, check=True)
    return listed.stdout.split("\n")[:-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--synthetic", type=int, default=0, help="label-only harness images to add for the run")
    parser.add_argument("--tasks", type=int, default=88, help="tasks of each synthetic image's framework")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "ls" / "RESULTS.json")
    args = parser.parse_args()
    evals = shutil.which("evals", path=str(Path(sys.executable).parent)) or "evals"
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    added = build_synthetic(args.synthetic, args.tasks) if args.synthetic else []
    try:
        images = harness_images()
        listed = subprocess.run([evals, "ls", "--json"], capture_output=True, text=True, check=True, env=env)
        entries = json.loads(listed.stdout)
        load_before = os.getloadavg()
        result = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.node(),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "labelled_image_rows": len(images), "synthetic_images": len(added),
            "harnesses_listed": len({entry["harness"] for entry in entries}), "tasks_listed": len(entries),
            "evals_ls": timed([evals, "ls"], rounds=args.rounds, env=env),
            "evals_help": timed([evals, "--help"], rounds=args.rounds, env=env),
            "docker_image_ls": timed(["docker", "image", "ls", "--filter", f"label={LABEL}"], rounds=args.rounds,
                                     env=env),
            "loadavg_1min_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
            "rounds": args.rounds,
        }
    finally:
        if added:
            subprocess.run(["docker", "rmi", *added], capture_output=True, check=False)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    ls, help_, engine = result["evals_ls"], result["evals_help"], result["docker_image_ls"]
    print(f"| {result['date'][:16]} | {result['harnesses_listed']} ({len(added)} synthetic) | "
          f"{result['tasks_listed']} | {ls['median']:.2f} ({ls['min']:.2f}-{ls['max']:.2f}) | "
          f"{help_['median']:.2f} | {engine['median']:.2f} | {result['loadavg_1min_before_after']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The simple-evals image's data step: every dataset and file a task reads is loaded here, before any request to the
model, from the staged data (``--data_dir``), the cache, or the network (online), exactly as the harness will load
it (through :mod:`evals_simple_evals.staging`). So the harness run that follows finds it all in place.

    python -m evals_simple_evals.datasets_for --check EVAL_NAME [--eval_type TYPE]
    python -m evals_simple_evals.datasets_for --all          # every task's sources (a build-time self-check)

Exit codes: 0 ready; 2 something cannot be had, with a last line ``evals-data-error: MESSAGE | hint: HINT`` (the
runtime's contract) naming the dataset id and the layout to put under --data_dir; anything else is a bug.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import urllib.request
from typing import NoReturn

import datasets
from simple_evals.constants import GPQA_VARIANTS, MULTILINGUAL_MMLU, MULTILINGUAL_MMLU_LITE

from evals_simple_evals import staging
from evals_simple_evals.sources import Blob, Hub, Source, sources

ALL_EVAL_NAMES = (
    "math_test_500", "AIME_2024", "AIME_2025", "AA_math_test_500", "AA_AIME_2024", "mmlu", "mmlu_pro", "mgsm",
    "humaneval", "humanevalplus", "simpleqa", "math_test_500_nemo", "aime_2024_nemo", "aime_2025_nemo",
    "browsecomp", "healthbench", "healthbench_hard", "healthbench_consensus")
GATED = {"Idavidrein/gpqa"}
BLOB_TIMEOUT = 120


def fail(message: str, hint: str) -> NoReturn:
    print(f"evals-data-error: {message} | hint: {hint}", flush=True)
    raise SystemExit(2)


def reason(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:200]}" if text else type(err).__name__


def hub_hint(source: Hub) -> str:
    data_dir = staging.data_dir()
    hint = (f"put the Hub repository's files, in its own layout, under --data_dir as {source.id}/ (mounted at "
            f"{data_dir}/{source.id}; e.g. `hf download {source.id} --repo-type dataset --local-dir "
            f"DATA_DIR/{source.id}`), or run online so it is fetched into the cache")
    if source.id in GATED:
        hint += f" ({source.id} is gated: accept its terms on the Hub and export HF_TOKEN)"
    return hint


def check_hub(source: Hub, eval_type: str) -> str:
    staged = staging.staged_dataset(source.id)
    try:
        loaded = datasets.load_dataset(source.id, source.config, split=source.split)
    except Exception as err:  # whatever datasets raises, the data cannot be had
        where = f"staged at {staged}" if staged else "not staged, not in the cache, not downloadable"
        fail(f"{source.describe()} (split {source.split}) for task {eval_type}: {where} ({reason(err)})",
             hub_hint(source))
    return f"{source.describe()}: {len(loaded)} rows" + (f" from {staged}" if staged else "")


def check_blob(source: Blob, eval_type: str) -> str:
    found = staging.blob_path(source.url)
    if found:
        return f"{source.describe()}: {found}"
    layout = (f"put it under --data_dir as openaipublic/simple-evals/{source.name} (mounted at "
              f"{staging.data_dir()}/openaipublic/simple-evals/{source.name}), or run online so it is fetched "
              "into the cache")
    if os.environ.get("EVALS_OFFLINE") == "1":
        fail(f"{source.describe()} for task {eval_type} is not staged and not in the cache (offline)", layout)
    target = staging.blob_cache_path(source.url)
    partial = target.with_name(target.name + ".part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(source.url, timeout=BLOB_TIMEOUT) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out)
        partial.replace(target)
    except OSError as err:
        partial.unlink(missing_ok=True)
        fail(f"{source.describe()} for task {eval_type} cannot be downloaded ({reason(err)})", layout)
    return f"{source.describe()}: downloaded to {target}"


def check(eval_name: str, eval_type: str) -> None:
    datasets.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    try:
        needed: list[Source] = sources(eval_name)
    except ValueError as err:
        fail(f"task {eval_type}: {err}", "config.params.task must be one of simple-evals' --eval_name choices")
    for source in needed:
        line = check_hub(source, eval_type) if isinstance(source, Hub) else check_blob(source, eval_type)
        print(f"data: {line}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="evals_simple_evals.datasets_for", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", metavar="EVAL_NAME", help="load every source of this simple-evals eval")
    parser.add_argument("--eval_type", help="the task's name in messages (default: EVAL_NAME)")
    parser.add_argument("--all", action="store_true", help="print every eval's sources (no loading)")
    args = parser.parse_args(argv)
    staging.install()
    if args.all:
        for name in (*ALL_EVAL_NAMES, *MULTILINGUAL_MMLU, *MULTILINGUAL_MMLU_LITE, *GPQA_VARIANTS):
            print(name, " ".join(source.describe() for source in sources(name)))
        return 0
    if not args.check:
        parser.error("give --check EVAL_NAME or --all")
    check(args.check, args.eval_type or args.check)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The lm-eval image's data step: load the task(s) exactly as lm-eval will, before any request to the model.

Run with the harness's Python (framework.yml's ``data_command``). Loading a task through lm-eval's own
TaskManager makes ``datasets`` fetch its data into the Hugging Face cache (or, with HF_*_OFFLINE=1, find it
there) and imports the task's utils, which fetch what they need themselves (the ``code_eval`` metric, NLTK
data). So the harness run that follows reads everything from the cache.

Exit codes: 0 ready; 2 data missing or unknown task, with a last line
``evals-data-error: MESSAGE | hint: HINT`` (the runtime's contract); anything else is a bug (traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

SHIPPED_MODULES = Path("/opt/hf-modules")
"""Hub metric modules shipped in the image (code_eval), seeded into the cache so runs work without the Hub."""


def fail(message: str, hint: str) -> NoReturn:
    print(f"evals-data-error: {message} | hint: {hint}", flush=True)
    raise SystemExit(2)


def seed_modules() -> None:
    """Copy the shipped metric modules into HF_MODULES_CACHE where they are missing (never overwrite)."""
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    target = Path(os.environ.get("HF_MODULES_CACHE", home / "modules"))
    if not SHIPPED_MODULES.is_dir() or target == SHIPPED_MODULES:
        return
    try:
        shutil.copytree(SHIPPED_MODULES, target, dirs_exist_ok=True,
                        copy_function=lambda src, dst: None if os.path.exists(dst) else shutil.copy2(src, dst))
    except OSError as err:  # a read-only prefetched cache: it was seeded when it was filled
        print(f"data: not seeding metric modules into {target}: {err.strerror}", file=sys.stderr)


def nltk_download_dir() -> None:
    """NLTK downloads into the first writable directory of NLTK_DATA: make the cache's one exist."""
    first = os.environ.get("NLTK_DATA", "").split(os.pathsep)[0]
    if first:
        with contextlib.suppress(OSError):
            Path(first).mkdir(parents=True, exist_ok=True)


def describe(kwargs: dict[str, Any]) -> str:
    """``dataset openai/gsm8k (config main, revision main)``."""
    path = kwargs.get("path")
    name = kwargs.get("name")
    revision = kwargs.get("revision") or "main"
    if path in ("json", "csv", "parquet", "text", "arrow"):
        files = kwargs.get("data_files")
        return f"local {path} files {files}"
    config = f"config {name}, " if name else ""
    return f"dataset {path} ({config}revision {revision})"


def classify(err: BaseException, what: str, *, offline: bool, fetch: str) -> tuple[str, str]:
    """(message, hint) for an exception raised while loading ``what``."""
    text = " ".join(str(err).split()) or type(err).__name__
    names = {cls.__name__ for cls in type(err).__mro__}
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    token = "HF_TOKEN is set" if os.environ.get("HF_TOKEN") else "no HF_TOKEN was given"
    if "GatedRepoError" in names or "gated" in text.lower():
        page = f"{endpoint}/{'' if what.startswith('tokenizer ') else 'datasets/'}{what.split()[1]}"
        return (f"{what} is gated on the Hub ({token})",
                f"accept its terms at {page} and export HF_TOKEN=<a token with access>; evals forwards it to "
                "the container by name")
    if isinstance(err, OSError) and not isinstance(err, ConnectionError) and err.errno is not None:
        return (f"{what}: cannot use the cache ({type(err).__name__}: {text[:200]})",
                "the cache must be writable by the container's user (the libraries write lock files)")
    if offline or "OfflineModeIsEnabled" in text or "offline" in text.lower():
        return (f"{what} is not in the cache and this run is offline",
                f"on a connected machine run `{fetch}`, then run with --offline --data DIR "
                "(or run once without --offline to fill the cache)")
    if names & {"RepositoryNotFoundError", "DatasetNotFoundError", "RevisionNotFoundError", "FileNotFoundError"}:
        return (f"{what} cannot be found at {endpoint}: {text[:300]}",
                "check the task's dataset_path/revision; a private dataset needs HF_TOKEN")
    return (f"{what} cannot be fetched from {endpoint}: {text[:300]}",
            f"check the network (HF_ENDPOINT, proxies), or fetch it elsewhere with `{fetch}` and run with "
            "--offline --data DIR")


class _LoadFailedError(Exception):
    def __init__(self, what: str, cause: BaseException) -> None:
        super().__init__(what)
        self.what = what
        self.cause = cause


def watch_loads() -> None:
    """Wrap datasets.load_dataset so a failure names the dataset lm-eval asked for."""
    import datasets  # noqa: PLC0415 (the harness's library; this file is also imported by unit tests without it)

    original: Callable[..., Any] = datasets.load_dataset

    def load_dataset(*args: Any, **kwargs: Any) -> Any:
        if args:
            kwargs = {"path": args[0], **({"name": args[1]} if len(args) > 1 else {}), **kwargs}
            args = ()
        what = describe(kwargs)
        print(f"data: {what}", file=sys.stderr, flush=True)
        try:
            return original(**kwargs)
        except Exception as err:
            raise _LoadFailedError(what, err) from err

    datasets.load_dataset = load_dataset


def fetch_tokenizer(name: str, *, offline: bool, fetch: str) -> None:
    """Load the Hugging Face tokenizer lm-eval will load (``tokenizer_backend: huggingface``), into the cache."""
    if Path(name).is_dir():
        print(f"data: tokenizer {name}: a local directory", file=sys.stderr, flush=True)
        return
    what = f"tokenizer {name} (revision main)"
    print(f"data: {what}", file=sys.stderr, flush=True)
    import transformers  # noqa: PLC0415 (the harness's library, slow to import: only when a tokenizer is asked for)

    try:
        transformers.AutoTokenizer.from_pretrained(name)
    except Exception as err:  # every failure becomes the one-line reason
        fail(*classify(err, what, offline=offline, fetch=fetch))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", required=True, help="lm-eval task names, comma-separated")
    parser.add_argument("--include_path", action="append", default=[], help="task YAML directories (repeatable)")
    parser.add_argument("--eval_type", required=True, help="the evals task, for the fetch hint")
    parser.add_argument("--tokenizer", default=None, help="a Hugging Face tokenizer to fetch too (Hub id or path)")
    args = parser.parse_args(argv)
    offline = os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
    fetch = f"evals prefetch --eval_type {args.eval_type} --to DIR"
    seed_modules()
    nltk_download_dir()
    watch_loads()

    from lm_eval.tasks import TaskManager, get_task_dict  # noqa: PLC0415 (after load_dataset is wrapped)

    paths = [p for p in args.include_path if Path(p).is_dir()]
    manager = TaskManager(include_path=paths or None)
    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    known = set(manager.all_tasks)
    unknown = [n for n in names if n not in known]
    if unknown:
        fail(f"lm-eval has no task {', '.join(unknown)}", "list lm-eval's tasks with `lm-eval ls tasks` in the image, "
             "or pre-stage the task YAML under --data_dir DIR/tasks")
    try:
        loaded = get_task_dict(names, manager)
    except _LoadFailedError as failed:
        message, hint = classify(failed.cause, failed.what, offline=offline, fetch=fetch)
        fail(message, hint)
    if args.tokenizer:
        fetch_tokenizer(args.tokenizer, offline=offline, fetch=fetch)
    count = len(loaded)
    print(f"data: {', '.join(names)} ready ({count} task{'s' if count != 1 else ''} or group"
          f"{'s' if count != 1 else ''}, {'from the cache' if offline else 'fetched or cached'})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

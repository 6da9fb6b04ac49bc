"""LMUData, VLMEvalKit's dataset files: fetched into the cache online, found in the cache or pre-staged offline.

VLMEvalKit reads each dataset from ``$LMUData/<FILE>.tsv`` and downloads the file (``download_file``) when it
is missing or its md5 is not the one it records; a failed download becomes a log line and exit code 0, and a
failed huggingface.co download is retried at hf-mirror.com. This image does it differently:

- **Where files are**: the cache, ``$LMUData`` (``/cache/LMUData``: the host's data cache, shared by runs),
  and pre-staged files, ``$EVALS_LMUDATA_STAGED`` (``/data/LMUData``: ``--data_dir``, read-only). A
  pre-staged file wins and is used as it is, whatever its md5 (a subset, a fixed copy, a newer release).
- **The data step** (``python -m evals_vlmeval.lmudata``, the framework's ``data_command``) runs before any
  request to the model: a file in neither place is downloaded into the cache (online), from the URL
  VLMEvalKit records, or from the same path under ``$EVALS_LMUDATA_MIRROR`` (a mirror or an artifact
  proxy); offline (``EVALS_OFFLINE=1``, set by ``--offline``), or when the download fails, it stops with
  exit code 2 and one line naming the dataset, the file and the command that fetches it.
- **During the run** VLMEvalKit sees a temporary directory of symlinks to both places (its own writes,
  decoded images and ``*_local.tsv`` copies of files over 1 GB, go there: ``/data`` may be read-only), and
  ``download_file`` is replaced: an existing file is used as it is; a missing one is fetched into the cache
  as above (online) or stops the run with exit code 2 (offline). Nothing goes to hf-mirror.com.
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import importlib
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from urllib.parse import urlsplit

CACHE_VAR = "LMUData"  # VLMEvalKit's own name for its data root
STAGED_VAR = "EVALS_LMUDATA_STAGED"
MIRROR_VAR = "EVALS_LMUDATA_MIRROR"
DEFAULT_STAGED = "/data/LMUData"
EXIT_MISSING_DATA = 2
ERROR_MARK = "evals-data-error: "  # the runtime's data-step contract (orchestrator.runtime.data)
CHUNK = 1 << 20

log = logging.getLogger("evals_vlmeval")


class MissingDataError(Exception):
    """A dataset file that cannot be had: ``message`` names it, ``hint`` says how to get it."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def offline() -> bool:
    """``--offline`` (``EVALS_OFFLINE=1``), or the Hugging Face switch a plain ``docker run`` may set."""
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
               for name in ("EVALS_OFFLINE", "HF_HUB_OFFLINE"))


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_VAR) or Path.home() / "LMUData")


def staged_dir() -> Path:
    return Path(os.environ.get(STAGED_VAR) or DEFAULT_STAGED)


def source_url(url: str) -> str:
    """Where to download ``url`` from: the same path under ``$EVALS_LMUDATA_MIRROR`` if set; a Hugging Face
    URL under ``$HF_ENDPOINT`` if set; else ``url``."""
    parts = urlsplit(url)
    mirror = os.environ.get(MIRROR_VAR, "").strip()
    hub = os.environ.get("HF_ENDPOINT", "").strip()
    if mirror:
        base = mirror
    elif hub and parts.hostname == "huggingface.co":
        base = hub
    else:
        return url
    rest = parts.path + (f"?{parts.query}" if parts.query else "")
    return base.rstrip("/") + "/" + rest.lstrip("/")


def fetch_hint(eval_type: str | None, file: str) -> str:
    prefetch = f"evals prefetch --eval_type {eval_type} --to DIR" if eval_type else "evals prefetch --to DIR"
    return (f"on a connected machine run `{prefetch}`, then run with --offline --data DIR; "
            f"or stage the file as DIR/LMUData/{file} and pass --data_dir DIR")


def _progress(file: str, done: int, total: int | None, started: float) -> None:
    rate = done / max(time.monotonic() - started, 1e-6) / 1e6
    of = f" of {total / 1e6:.1f} MB ({100 * done / total:.0f}%)" if total else " MB"
    print(f"data: {file}: {done / 1e6:.1f}{of if total else of.strip()}, {rate:.1f} MB/s",
          file=sys.stderr, flush=True)


def download(url: str, target: Path, *, eval_type: str | None = None) -> str:
    """Download ``url`` (through the mirror, if any) into ``target`` atomically; returns the file's md5."""
    import requests  # noqa: PLC0415 (the harness venv's; honours HTTP(S)_PROXY, NO_PROXY and the CA bundle)

    source = source_url(url)
    file = target.name
    failed_hint = (f"check the network (HTTPS_PROXY, NO_PROXY), set {MIRROR_VAR} to a mirror of "
                   f"{urlsplit(url).scheme}://{urlsplit(url).netloc}/, or " + fetch_hint(eval_type, file))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkstemp(prefix=f".{file}.", suffix=".partial", dir=target.parent)[1])
    except OSError as err:
        raise MissingDataError(f"cannot write {file} into the cache {target.parent}: {err.strerror}",
                               "the cache must be writable by the container's user (--cache_dir)") from None
    print(f"data: downloading {file} from {source}", file=sys.stderr, flush=True)
    digest = hashlib.md5(usedforsecurity=False)
    done = 0
    try:
        with requests.get(source, stream=True, timeout=(30, 300)) as response:
            if response.status_code != 200:
                raise MissingDataError(f"{file} cannot be fetched from {source}: HTTP {response.status_code} "
                                       f"{response.reason or ''}".rstrip(), failed_hint)
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            started = last = time.monotonic()
            with partial.open("wb") as handle:
                for block in response.iter_content(CHUNK):
                    handle.write(block)
                    digest.update(block)
                    done += len(block)
                    if time.monotonic() - last >= 10:
                        last = time.monotonic()
                        _progress(file, done, total, started)
            if total is not None and done != total:
                raise MissingDataError(f"{file} from {source} ended after {done} of {total} bytes", failed_hint)
        os.replace(partial, target)
    except MissingDataError:
        partial.unlink(missing_ok=True)
        raise
    except requests.RequestException as err:
        partial.unlink(missing_ok=True)
        reason = " ".join(str(err).split())[:300] or type(err).__name__
        raise MissingDataError(f"{file} cannot be fetched from {source}: {type(err).__name__}: {reason}",
                               failed_hint) from None
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise MissingDataError(f"cannot write {file} into the cache {target.parent}: {err.strerror}",
                               "the cache must be writable by the container's user (--cache_dir)") from None
    print(f"data: {file}: {done / 1e6:.1f} MB into {target.parent}", file=sys.stderr, flush=True)
    return digest.hexdigest()


def ensure(name: str, url: str, md5: str | None, *, places: tuple[Path, Path], eval_type: str | None) -> Path:
    """The file of dataset ``name``: pre-staged, cached, or (online) downloaded into the cache.

    ``places``: (pre-staged directory, cache directory), read before ``vlmeval`` is imported (which points
    ``$LMUData`` at the run's view)."""
    file = url.rsplit("/", maxsplit=1)[-1]
    staged, cache = places[0] / file, places[1] / file
    if staged.is_file():
        print(f"data: {name}: {file} is pre-staged in {staged.parent}; used as it is", file=sys.stderr, flush=True)
        return staged
    if cache.is_file():
        print(f"data: {name}: {file} is in the cache {cache.parent}", file=sys.stderr, flush=True)
        return cache
    if offline():
        raise MissingDataError(
            f"VLMEvalKit dataset {name} ({file}) is neither in the cache {cache.parent} nor pre-staged in "
            f"{staged.parent}, and this run is offline", fetch_hint(eval_type, file))
    got = download(url, cache, eval_type=eval_type)
    if md5 and got != md5:
        print(f"data: {file}: md5 {got} is not the {md5} VLMEvalKit records (the server's file changed, or the "
              "mirror serves another); it is used as it is", file=sys.stderr, flush=True)
    return cache


def dataset_source(name: str, class_name: str) -> tuple[str | None, str | None]:
    """(url, md5) VLMEvalKit records for dataset ``name`` of class ``class_name``; MissingDataError if unknown."""
    datasets = importlib.import_module("vlmeval.dataset")  # the harness's package: imported by the data step only
    cls = getattr(datasets, class_name, None)
    if not isinstance(cls, type):
        raise MissingDataError(f"VLMEvalKit has no dataset class {class_name}",
                               "check config.params.extra.dataset.class")
    urls = getattr(cls, "DATASET_URL", None) or {}
    md5s = getattr(cls, "DATASET_MD5", None) or {}
    supported = cls.supported_datasets() if hasattr(cls, "supported_datasets") else list(urls)
    if name not in urls and name not in supported:
        raise MissingDataError(f"VLMEvalKit's {class_name} has no dataset {name}",
                               "check config.params.extra.dataset.name")
    return urls.get(name), md5s.get(name)


def main(argv: list[str] | None = None) -> int:
    """The data step: exit 0 when the dataset's file is there; exit 2 and one line when it cannot be had."""
    parser = argparse.ArgumentParser(description="Fetch or find a VLMEvalKit dataset before the run.")
    parser.add_argument("--dataset", required=True, help="VLMEvalKit's dataset name, e.g. OCRBench")
    parser.add_argument("--class", dest="class_name", required=True, help="its dataset class, e.g. OCRBench")
    parser.add_argument("--eval_type", default=None, help="the evals task, for the fetch hint")
    args = parser.parse_args(argv)
    places = (staged_dir(), cache_dir())
    try:
        url, md5 = dataset_source(args.dataset, args.class_name)
        if url is None:
            print(f"data: VLMEvalKit records no file for {args.dataset}; its class prepares the data during the run",
                  file=sys.stderr, flush=True)
            return 0
        ensure(args.dataset, url, md5, places=places, eval_type=args.eval_type)
    except MissingDataError as err:
        print(f"{ERROR_MARK}{err.message} | hint: {err.hint}", flush=True)
        return EXIT_MISSING_DATA
    print(f"data: {args.dataset} ready", flush=True)
    return 0


# ---- during the run: VLMEvalKit's view of both places, and its downloader ----------------------------------


def apply() -> str:
    """Point VLMEvalKit at a writable view of the pre-staged files and the cache, and replace its downloader."""
    import vlmeval.smp.file  # noqa: PLC0415 (loaded by now; imported here to name it)

    from evals_vlmeval.patches import rebind  # noqa: PLC0415

    staged, cache = staged_dir(), cache_dir()
    view = _view(staged, cache)
    os.environ[CACHE_VAR] = str(view)
    rebind("download_file", vlmeval.smp.file.download_file, _Downloader(staged=staged, cache=cache, view=view))
    # VLMEvalKit warns "not downloaded" before every download; an existing file gets its own message instead.
    warnings.filterwarnings("ignore", message="The dataset tsv is not downloaded")
    mode = "offline" if offline() else "online"
    return f"LMUData from {staged} (pre-staged) and {cache} (cache), {mode}"


def _view(staged: Path, cache: Path) -> Path:
    """A temporary directory with a symlink to each entry of ``staged``, then of ``cache`` (removed at exit)."""
    view = Path(tempfile.mkdtemp(prefix="lmudata-"))
    atexit.register(shutil.rmtree, view, ignore_errors=True)
    for source in (staged, cache):
        if source.is_dir():
            for entry in source.iterdir():
                link = view / entry.name
                if not link.is_symlink() and not entry.name.startswith("."):
                    link.symlink_to(entry)
    return view


class _Downloader:
    """``download_file``: existing files as they are; missing ones into the cache (online) or exit 2 (offline)."""

    def __init__(self, *, staged: Path, cache: Path, view: Path) -> None:
        self.staged = staged
        self.cache = cache
        self.view = view

    def __call__(self, url: str, filename: str | None = None) -> str:
        target = Path(filename if filename is not None else url.rsplit("/", maxsplit=1)[-1])
        if target.exists():
            where = "pre-staged" if target.resolve().parent == self.staged.resolve() else "cached"
            log.warning("%s: using the %s file in %s as it is (VLMEvalKit records another md5 for %s); "
                        "nothing is downloaded", target.name, where, target.resolve().parent, url)
            return str(target)
        in_view = target.absolute().parent == self.view
        try:
            if offline():
                raise MissingDataError(
                    f"VLMEvalKit needs {target.name}, which is neither in the cache {self.cache} nor pre-staged in "
                    f"{self.staged}, and this run is offline", fetch_hint(None, target.name))
            download(url, self.cache / target.name if in_view else target)
        except MissingDataError as err:
            print(f"error: {err.message} ({err.hint})", file=sys.stderr, flush=True)
            raise SystemExit(EXIT_MISSING_DATA) from None
        if in_view:
            target.symlink_to(self.cache / target.name)
        return str(target)


if __name__ == "__main__":
    raise SystemExit(main())

"""Offline LMUData: pre-staged dataset files are used as they are, and nothing is ever downloaded.

VLMEvalKit reads ``$LMUData/<DATASET>.tsv`` only if its md5 equals the one it records for the upstream
file; otherwise, or if the file is missing, it downloads it (``download_file``), and ``vlmeval.run`` turns
the failure into a log line and exit code 0. It also writes next to the data (decoded images in
``images/``, ``*_local.tsv`` for files over 1 GB), which a read-only mount does not allow.

With ``EVALS_OFFLINE_LMUDATA=1``:

- ``$LMUData`` (default ``/data/LMUData`` in the image) is the read-only source. VLMEvalKit is pointed at a
  fresh temporary directory holding a symlink to each of its entries, so whatever it writes goes there.
- ``download_file`` is replaced: a file that exists (pre-staged, md5 different from upstream's) is used as
  it is, with a warning; a missing file stops the run at once with exit code 2 and a message that says
  what to stage where. No connection is made.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

from evals_vlmeval.patches import rebind

FLAG = "EVALS_OFFLINE_LMUDATA"
ROOT_VARIABLE = "LMUData"  # VLMEvalKit's own name for it
EXIT_MISSING_DATA = 2

log = logging.getLogger("evals_vlmeval")


def enabled() -> bool:
    """Whether ``EVALS_OFFLINE_LMUDATA`` asks for offline data."""
    return os.environ.get(FLAG, "0").strip().lower() in ("1", "true", "yes", "on")


def apply() -> str:
    """Point VLMEvalKit at a writable view of ``$LMUData`` and replace its downloader."""
    import vlmeval.smp.file  # noqa: PLC0415 (loaded by now; imported here to name it)

    source = Path(os.environ.get(ROOT_VARIABLE) or Path.home() / "LMUData")
    view = _writable_view(source)
    os.environ[ROOT_VARIABLE] = str(view)
    rebind("download_file", vlmeval.smp.file.download_file, _Offline(source=source, view=view).download_file)
    # VLMEvalKit warns "not downloaded" before every download; here a pre-staged file gets its own message.
    warnings.filterwarnings("ignore", message="The dataset tsv is not downloaded")
    return f"offline LMUData from {source} (no downloads)"


def _writable_view(source: Path) -> Path:
    """A temporary directory with a symlink to each entry of ``source`` (removed at exit)."""
    view = Path(tempfile.mkdtemp(prefix="lmudata-"))
    atexit.register(shutil.rmtree, view, ignore_errors=True)
    if source.is_dir():
        for entry in source.iterdir():
            (view / entry.name).symlink_to(entry)
    return view


class _Offline:
    """``download_file`` for a machine without the internet."""

    def __init__(self, *, source: Path, view: Path) -> None:
        self.source = source
        self.view = view

    def download_file(self, url: str, filename: str | None = None) -> str:
        target = Path(filename if filename is not None else url.rsplit("/", maxsplit=1)[-1])
        name = self._display(target)
        if target.exists():
            log.warning("%s: using the pre-staged file in %s as it is (VLMEvalKit records another md5 for %s); "
                        "nothing is downloaded", name, self.source, url)
            return str(target)
        where = (f"the LMUData directory {self.source}" if self.source.is_dir()
                 else f"{self.source}, which does not exist")
        print(
            f"error: VLMEvalKit needs {name}, which is not in {where}; this image never downloads data "
            f"({FLAG}=1). Stage it as DIR/LMUData/{name} and run with `evals run --data_dir DIR` (mounted at "
            f"/data), or mount the directory holding it and set LMUData to it (upstream file: {url}).",
            file=sys.stderr, flush=True,
        )
        raise SystemExit(EXIT_MISSING_DATA)

    def _display(self, target: Path) -> str:
        try:
            return str(target.absolute().relative_to(self.view))
        except ValueError:
            return target.name

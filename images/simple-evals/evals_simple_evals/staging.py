"""Staged data in preference to the Hub and the blob store: the image's only change to how simple-evals loads data.

- ``datasets.load_dataset(ID, ...)`` loads ``<data_dir>/ID`` (a folder in the Hub repository's own layout, e.g.
  ``/data/Idavidrein/gpqa/gpqa_diamond.csv``) when that folder exists, else asks the Hub as usual (into the cache
  under ``$HF_HOME``; ``HF_ENDPOINT``, ``HF_TOKEN``, proxies and ``HF_*_OFFLINE`` as ``datasets`` honours them).
- A file simple-evals reads from OpenAI's blob store (browsecomp, healthbench) is read from
  ``<data_dir>/openaipublic/simple-evals/<file>``, else from ``<cache>/openaipublic/simple-evals/<file>`` where the
  data step downloaded it.

``<data_dir>`` is ``$EVALS_DATA_DIR`` (the image sets ``/data``, where --data_dir is mounted); ``<cache>`` is
``$EVALS_CACHE_DIR`` (``/cache``). :func:`install` must run before simple-evals' modules are imported: they bind
``load_dataset`` at import.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import pandas

from evals_simple_evals.sources import BLOB


def data_dir() -> Path:
    return Path(os.environ.get("EVALS_DATA_DIR", "/data"))


def cache_dir() -> Path:
    return Path(os.environ.get("EVALS_CACHE_DIR", "/cache"))


def staged_dataset(dataset_id: str) -> Path | None:
    """``<data_dir>/<dataset_id>`` if it is a folder (ids are ``owner/name``; nothing else is looked up)."""
    parts = dataset_id.split("/")
    if len(parts) != 2 or any(part in ("", ".", "..") for part in parts):
        return None
    folder = data_dir() / dataset_id
    return folder if folder.is_dir() else None


def blob_path(url: str) -> Path | None:
    """Where a blob-store file is staged or cached, if it is; None for other URLs or a file not there."""
    if not url.startswith(BLOB):
        return None
    name = url.removeprefix(BLOB)
    for root in (data_dir(), cache_dir()):
        path = root / "openaipublic" / "simple-evals" / name
        if path.is_file():
            return path
    return None


def blob_cache_path(url: str) -> Path:
    return cache_dir() / "openaipublic" / "simple-evals" / url.removeprefix(BLOB)


def install() -> None:
    """Route ``datasets.load_dataset`` and the blob-store reads through the staged data (see the module docstring)."""
    original_load: Callable[..., Any] = datasets.load_dataset
    if getattr(original_load, "evals_staged", False):
        return

    def load_dataset(path: str, *args: Any, **kwargs: Any) -> Any:
        staged = staged_dataset(path) if isinstance(path, str) else None
        return original_load(str(staged) if staged else path, *args, **kwargs)

    load_dataset.evals_staged = True  # type: ignore[attr-defined]
    datasets.load_dataset = load_dataset

    original_urlopen = urllib.request.urlopen

    def urlopen(url: Any, *args: Any, **kwargs: Any) -> Any:
        local = blob_path(url) if isinstance(url, str) else None
        return open(local, "rb") if local else original_urlopen(url, *args, **kwargs)

    urllib.request.urlopen = urlopen

    original_read_csv = pandas.read_csv

    def read_csv(source: Any, *args: Any, **kwargs: Any) -> Any:
        local = blob_path(source) if isinstance(source, str) else None
        return original_read_csv(local or source, *args, **kwargs)

    pandas.read_csv = read_csv

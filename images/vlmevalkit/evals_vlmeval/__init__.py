"""This image's small, explicit changes to VLMEvalKit (``nvidia-vlmeval``), applied when ``vlmeval`` is imported.

``evals_vlmeval.pth`` in the harness venv calls :func:`install` at interpreter start-up. That only puts a
finder on ``sys.meta_path`` that waits for the ``vlmeval`` package; nothing else is imported or changed
until a program imports ``vlmeval`` (``python -m vlmeval.run`` does, before running ``run.py``). Once the
package has finished importing, :func:`evals_vlmeval.patches.apply` changes it:

- ``lmudata``: dataset files come from the pre-staged data (used as they are, whatever their md5) or the
  cache, into which they are downloaded online; offline nothing is downloaded, and nothing ever goes to
  hf-mirror.com (see :mod:`evals_vlmeval.lmudata`, also the image's data step);
- ``fidelity``: with ``img_size: -1`` the endpoint receives each image's original bytes (see
  :mod:`evals_vlmeval.fidelity`);
- ``judge``: a judge is any OpenAI-compatible endpoint (see :mod:`evals_vlmeval.judge`).
- ``records``: per-sample files also as ``.tsv``, with the rows' image hashes, prompts and hits (see
  :mod:`evals_vlmeval.records`).

Set ``EVALS_VLMEVAL_PATCHES=0`` to run VLMEvalKit unchanged.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Sequence
from types import ModuleType

TARGET = "vlmeval"


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds ``vlmeval`` like the default finder does, and patches it once its ``__init__`` has run."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        original = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            original(module)
            from evals_vlmeval.patches import apply  # noqa: PLC0415 (only once vlmeval exists)

            apply()

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install() -> None:
    """Arrange for the patches to be applied when ``vlmeval`` is imported (idempotent)."""
    if os.environ.get("EVALS_VLMEVAL_PATCHES", "1") == "0" or TARGET in sys.modules:
        return
    if not any(isinstance(finder, _AfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport())

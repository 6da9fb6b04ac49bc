"""Install code_eval.py where ``evaluate`` finds a cached copy of the Hub's ``code_eval`` metric.

Offline (``HF_EVALUATE_OFFLINE=1``) ``evaluate.load("code_eval")`` falls back to the newest
``<HF_MODULES_CACHE>/evaluate_modules/metrics/evaluate-metric--code_eval/<64-hex>/code_eval.py``.
This lays out exactly that (the hash is the file's sha256), then loads the metric by name,
offline, and scores one passing and one failing candidate.

    HF_MODULES_CACHE=/opt/hf-modules HF_EVALUATE_OFFLINE=1 HF_ALLOW_CODE_EVAL=1 \
        python install_code_eval.py code_eval.py
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import evaluate

NAME = "evaluate-metric--code_eval"


def install(source: Path, modules_cache: Path) -> Path:
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    root = modules_cache / "evaluate_modules"
    target = root / "metrics" / NAME / digest
    target.mkdir(parents=True, exist_ok=True)
    for package in (root, root / "metrics", root / "metrics" / NAME, target):
        (package / "__init__.py").touch()
    shutil.copyfile(source, target / "code_eval.py")
    return target / "code_eval.py"


def check() -> None:
    metric = evaluate.load("code_eval")
    pass_at_k, results = metric.compute(
        references=["assert add(2, 3) == 5"],
        predictions=[["def add(a, b):\n    return a * b", "def add(a, b):\n    return a + b"]],
        k=[1, 2],
    )
    if pass_at_k != {"pass@1": 0.5, "pass@2": 1.0}:
        raise SystemExit(f"code_eval: unexpected pass@k {pass_at_k} ({dict(results)})")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or "HF_MODULES_CACHE" not in os.environ:
        print(__doc__, file=sys.stderr)
        return 2
    installed = install(Path(argv[1]), Path(os.environ["HF_MODULES_CACHE"]))
    check()
    print(f"code_eval: installed {installed}; evaluate.load('code_eval') works offline")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

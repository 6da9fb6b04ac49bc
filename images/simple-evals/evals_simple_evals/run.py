"""The simple-evals launcher: ``simple_evals`` (nvidia-simple-evals 26.3's CLI, unchanged arguments) with

- staged data in preference to the Hub and the blob store (:mod:`evals_simple_evals.staging`);
- its per-sample results exported: after simple-evals has answered and scored every example (its ``common.
  map_with_progress``, which keeps each result in its response cache), one JSON line per example and repeat goes to
  ``<--out_dir>/per_sample.jsonl``: the dataset row it read, its conversation, score, per-sample metrics and the
  correct and extracted answers its HTML report shows. results come from its own ``<eval_name>.json``;
- ``--no_judge`` (ours, removed before simple-evals parses the rest): where simple-evals would fall back to one of
  NVIDIA's built-in judges (gpt-4 or Llama 3.3 70B on NVIDIA's servers, for math_test_500 and AIME_2024),
  answers are compared by simple-evals' own sympy grader (``math_grading.sympy_grader.grade_answer``, which the
  AA_* tasks try first) and nothing is sent to a judge. framework.yml passes it when no judge is configured.

    python -m evals_simple_evals.run [--no_judge] --eval_name NAME --url URL --out_dir DIR ...
"""

from __future__ import annotations

import html
import json
import re
import sys
from pathlib import Path
from typing import Any

from simple_evals import common
from simple_evals.diskcaching import Cache
from simple_evals.simple_evals_types import SingleEvalResult

from evals_simple_evals import staging

SAMPLES_EXPORT = "per_sample.jsonl"
SYMPY_BACKEND = "evals-sympy"
_REPORTED = re.compile(r"<p>(Correct Answer|Extracted Answer): (.*?)</p>", re.DOTALL)


class SympyGrader:
    """Stands where simple-evals expects its equality-checking judge; never asked (see :func:`grade_by_sympy`)."""


def grade_by_sympy(common: Any) -> None:
    """Make simple-evals' default judges, for the math tasks, its sympy grader (see the module docstring)."""
    original_load_judge = common.load_judge
    original_check = common.check_equality

    def load_default_config(model_alias: str) -> dict[str, Any]:
        return {"backend": SYMPY_BACKEND, "model": f"sympy (instead of {model_alias})"}

    def load_judge(judge_config: dict[str, Any]) -> Any:
        if judge_config.get("backend") == SYMPY_BACKEND:
            print("Grading answers with simple-evals' sympy grader (no judge configured)", flush=True)
            return SympyGrader()
        return original_load_judge(judge_config)

    async def check_equality(sampler: Any, correct_answer: str, extracted_answer: str,
                             use_sympy: bool = False) -> bool:
        if isinstance(sampler, SympyGrader):
            return bool(await original_check(None, correct_answer, extracted_answer, use_sympy=True))
        return bool(await original_check(sampler, correct_answer, extracted_answer, use_sympy=use_sympy))

    common.load_default_config = load_default_config
    common.load_judge = load_judge
    common.check_equality = check_equality


def _plain(value: Any) -> Any:
    """JSON for numpy and pandas values in dataset rows."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def reported_answers(report: str | None) -> dict[str, str]:
    """The correct and extracted answers as simple-evals' per-sample HTML shows them."""
    found = {name: html.unescape(value) for name, value in _REPORTED.findall(report or "")}
    return {"correct_answer" if name == "Correct Answer" else "extracted_answer": value
            for name, value in found.items()}


def export_samples(common: Any, *, out_dir: Path, n_repeats: int) -> None:
    """Wrap ``common.map_with_progress`` so it writes ``per_sample.jsonl`` (see the module docstring)."""
    original = common.map_with_progress

    async def map_with_progress(func: Any, items: list[Any], num_threads: int = 10, cache_dir: str = "cache.sqlite",
                                first_n: int | float | None = None) -> Any:
        results = await original(func, items, num_threads=num_threads, cache_dir=cache_dir, first_n=first_n)
        count = len(results)
        unique = max(count // n_repeats, 1) if n_repeats > 1 and count % n_repeats == 0 else count
        out_dir.mkdir(parents=True, exist_ok=True)
        with Cache(Path(cache_dir) / "cache.sqlite") as cache, open(out_dir / SAMPLES_EXPORT, "w",
                                                                        encoding="utf-8") as out:
            for index, item in enumerate(items[:count]):
                result = SingleEvalResult.from_dict(cache[f"{index}"])
                record = {"index": index, "doc_index": index % unique, "repeat": index // unique,
                          "doc": item, "score": result.score, "metrics": result.metrics or {},
                          "convo": result.convo, **reported_answers(result.html)}
                out.write(json.dumps(record, ensure_ascii=False, default=_plain) + "\n")
        return results

    common.map_with_progress = map_with_progress


def _option(args: list[str], name: str, default: str) -> str:
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def main() -> None:
    args = sys.argv[1:]
    no_judge = "--no_judge" in args
    args = [arg for arg in args if arg != "--no_judge"]
    staging.install()
    if no_judge:
        grade_by_sympy(common)
    export_samples(common, out_dir=Path(_option(args, "--out_dir", "/tmp")),
                   n_repeats=int(_option(args, "--num_repeats", "1")))
    # Only now: the evals bind load_dataset, check_equality, ... when they are imported.
    from simple_evals import __main__ as cli  # noqa: PLC0415

    sys.argv = ["simple_evals", *args]
    cli.main()


if __name__ == "__main__":
    main()

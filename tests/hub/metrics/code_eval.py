"""A self-written ``code_eval`` metric with the interface of the Space ``evaluate-metric/code_eval``.

tests/hub/repos.py copies this file to ``spaces/evaluate-metric/code_eval/code_eval.py``, where
``evaluate.load("code_eval")`` fetches it. Like the real module it refuses to run code unless
``HF_ALLOW_CODE_EVAL=1``, takes ``predictions`` (candidates per problem), ``references`` (test
programs), ``k``, ``num_workers`` and ``timeout``, and returns ``(pass_at_k, results)``. Each
candidate runs with its test in a fresh Python process; it passes if that process exits with 0.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import datasets  # type: ignore[import-not-found, unused-ignore]
import evaluate  # type: ignore[import-not-found, unused-ignore]

_DESCRIPTION = "Runs candidate programs against test programs and estimates pass@k (HumanEval's harness)."
_KWARGS_DESCRIPTION = "predictions: list of candidate lists; references: list of test programs; k: list of ints."
_WARNING = (
    "The code_eval metric executes untrusted model-generated code in Python. Set the environment "
    'variable HF_ALLOW_CODE_EVAL="1" to allow it (os.environ["HF_ALLOW_CODE_EVAL"] = "1").'
)


class CodeEval(evaluate.Metric):  # type: ignore[misc, unused-ignore]
    """pass@k of candidate programs, each run with its problem's test program."""

    def _info(self) -> Any:
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("string")), "references": datasets.Value("string")}
            ),
            homepage="https://github.com/openai/human-eval",
            license="MIT",
        )

    def _compute(
        self,
        predictions: list[list[str]],
        references: list[str],
        k: list[int] | None = None,
        num_workers: int = 4,
        timeout: float = 3.0,
    ) -> tuple[dict[str, float], dict[int, list[tuple[int, dict[str, Any]]]]]:
        if os.getenv("HF_ALLOW_CODE_EVAL", "0") != "1":
            raise ValueError(_WARNING)
        jobs = [
            (task_id, completion_id, f"{candidate}\n{test}")
            for task_id, (candidates, test) in enumerate(zip(predictions, references, strict=True))
            for completion_id, candidate in enumerate(candidates)
        ]
        with ThreadPoolExecutor(max_workers=num_workers) as executor:
            outcomes = list(executor.map(lambda job: _run(job[2], timeout), jobs))
        results: dict[int, list[tuple[int, dict[str, Any]]]] = {}
        for (task_id, completion_id, _), outcome in zip(jobs, outcomes, strict=True):
            passed = outcome == "passed"
            record = {"task_id": task_id, "passed": passed, "result": outcome, "completion_id": completion_id}
            results.setdefault(task_id, []).append((completion_id, record))
        totals = [len(results.get(task, [])) for task in range(len(references))]
        correct = [sum(record["passed"] for _, record in results.get(task, [])) for task in range(len(references))]
        pairs = list(zip(totals, correct, strict=True))
        pass_at_k = {
            f"pass@{n}": sum(_estimate(total, good, n) for total, good in pairs) / len(pairs)
            for n in (k if k is not None else [1, 10, 100])
            if totals and all(total >= n for total in totals)
        }
        return pass_at_k, results


def _run(program: str, timeout: float) -> str:
    try:
        done = subprocess.run([sys.executable, "-c", program], capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return "timed out"
    lines = done.stderr.decode(errors="replace").strip().splitlines()
    return "passed" if done.returncode == 0 else f"failed: {lines[-1] if lines else done.returncode}"


def _estimate(total: int, correct: int, k: int) -> float:
    """The unbiased pass@k estimator: 1 - C(total - correct, k) / C(total, k)."""
    return 1.0 - math.comb(total - correct, k) / math.comb(total, k)

"""pass@k for generated Python code: a local stand-in for the Hub's ``code_eval`` metric.

lm-eval's humaneval and mbpp tasks call ``evaluate.load("code_eval")``, which fetches the
metric script from the Hugging Face Hub. The image installs this module where ``evaluate``
looks for a cached copy of that metric (see install_code_eval.py), so the same call works
offline. Same interface and results as the Hub metric: ``compute(predictions, references,
k=[1, 10, 100], num_workers=4, timeout=3.0)`` returns ``(pass_at_k, results)`` where
``pass_at_k`` maps ``"pass@<k>"`` to the mean unbiased estimate (Chen et al. 2021) and
``results`` maps each task index to ``[(completion_id, {"task_id", "completion_id", "passed",
"result"})]``. Running model-written code needs ``HF_ALLOW_CODE_EVAL=1``, as upstream.

Each candidate runs as ``candidate + "\\n" + test`` in its own isolated Python process (new
session, empty working directory, no stdin), killed with its process group at the timeout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Estimates pass@k of generated Python programs by running them against their tests."

_KWARGS_DESCRIPTION = """
Args:
    predictions: for each problem, a list of candidate programs (strings).
    references: for each problem, the test code that must run without error after a candidate.
    k: the k values of pass@k to report (each only when every problem has at least k candidates).
    num_workers: candidates run concurrently.
    timeout: seconds one candidate may run.
Returns:
    pass_at_k: {"pass@<k>": mean estimate}
    results: {problem index: [(completion_id, {"task_id", "completion_id", "passed", "result"})]}
"""

_REFUSAL = (
    'The "code_eval" metric runs untrusted, model-generated code. Run it only inside a sandbox '
    '(this container), then set HF_ALLOW_CODE_EVAL="1".'
)

_ERROR_TAIL = 300
"""How much of a failing candidate's stderr is kept in its result."""


class CodeEval(evaluate.Metric):
    """The ``code_eval`` metric (pass@k)."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Chen et al., Evaluating Large Language Models Trained on Code, arXiv:2107.03374 (2021)",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("string")),
                    "references": datasets.Value("string"),
                }
            ),
        )

    def _compute(self, predictions, references, k=(1, 10, 100), num_workers=4, timeout=3.0):  # type: ignore[no-untyped-def]
        if os.getenv("HF_ALLOW_CODE_EVAL") != "1":
            raise ValueError(_REFUSAL)
        jobs = [
            (task_id, completion_id, candidate + "\n" + test)
            for task_id, (candidates, test) in enumerate(zip(predictions, references, strict=True))
            for completion_id, candidate in enumerate(candidates)
        ]
        with ThreadPoolExecutor(max_workers=max(1, int(num_workers))) as pool:
            outcomes = list(pool.map(lambda job: run_program(job[2], timeout=float(timeout)), jobs))

        results: dict[int, list[tuple[int, dict[str, object]]]] = defaultdict(list)
        for (task_id, completion_id, _), outcome in zip(jobs, outcomes, strict=True):
            record = {"task_id": task_id, "completion_id": completion_id,
                      "passed": outcome == "passed", "result": outcome}
            results[task_id].append((completion_id, record))

        total = np.array([len(runs) for runs in results.values()])
        correct = np.array([sum(record["passed"] for _, record in runs) for runs in results.values()])
        ks = [k] if isinstance(k, int) else list(k)
        pass_at_k = {f"pass@{n}": estimate_pass_at_k(total, correct, n).mean() for n in ks if (total >= n).all()}
        return pass_at_k, results


def run_program(program: str, *, timeout: float) -> str:
    """Run one program in a fresh interpreter: "passed", "timed out" or "failed: <error>"."""
    with tempfile.TemporaryDirectory(prefix="code_eval_") as workdir:
        script = Path(workdir) / "program.py"
        script.write_text(program, encoding="utf-8")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": workdir, "TMPDIR": workdir,
               "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
        proc = subprocess.Popen(  # running the candidate is the point of this metric
            [sys.executable, "-I", "-B", str(script)], cwd=workdir, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        try:
            _, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return "timed out"
        finally:
            _kill_group(proc)  # whatever the candidate left running in its session
        if proc.returncode == 0:
            return "passed"
        lines = stderr.decode("utf-8", "replace").strip().splitlines()
        return f"failed: {lines[-1][-_ERROR_TAIL:] if lines else f'exit code {proc.returncode}'}"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def estimate_pass_at_k(num_samples: np.ndarray, num_correct: np.ndarray, k: int) -> np.ndarray:
    """Unbiased pass@k per problem: 1 - C(n - c, k) / C(n, k), computed as a stable product."""

    def one(n: int, c: int) -> float:
        if n - c < k:
            return 1.0
        return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))

    return np.array([one(int(n), int(c)) for n, c in zip(num_samples, num_correct, strict=True)])

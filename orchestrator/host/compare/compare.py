"""Matching two runs' samples and the rows of a comparison: per (task, metric), the paired statistics.

Samples are matched on (task, sample_id, repeat). A sample_id is ``<doc id>#<hash of the dataset document>``, so the
same document id with another hash means the dataset changed between the runs. Any sample or task in one run only is
refused (:class:`~orchestrator.schema.errors.InputError`) unless ``allow_partial``: then the samples that match are
compared and the rest counted. Error samples (either side) are left out of every statistic and counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from orchestrator.host.compare import stats
from orchestrator.host.compare.load import Run, TaskSamples
from orchestrator.host.compare.report import Comparison, Flip, Method, Report, Row, RunInfo
from orchestrator.schema.errors import InputError
from orchestrator.schema.samples import SampleRecord

PARTIAL_HINT = "compare runs of the same tasks and data, or pass --allow-partial to compare the samples that match"


def label(index: int) -> str:
    """A, B, C, ... for the runs in the order given (R27, R28, ... past Z)."""
    return chr(ord("A") + index) if index < 26 else f"R{index + 1}"


def compare(runs: list[Run], *, allow_partial: bool = False, flips: bool = False, seed: int = 0,
            resamples: int = stats.RESAMPLES) -> Report:
    """The first run against each other one; p-values Holm-adjusted over every row of every comparison."""
    if len(runs) < 2:
        raise InputError("compare needs at least two runs", hint="evals compare BASELINE CANDIDATE [CANDIDATE ...]")
    infos = [RunInfo(label=label(i), source=run.source, tasks=list(run.tasks)) for i, run in enumerate(runs)]
    warnings: list[str] = []
    for info, run in zip(infos[1:], runs[1:], strict=True):  # every refusal before any statistic
        problems = mismatches(runs[0], run, names=("A", info.label))
        if problems and not allow_partial:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise InputError(problems[0] + more, hint=PARTIAL_HINT)
        warnings += [f"partial comparison: {problem}" for problem in problems]
        warnings += provenance_warnings(runs[0], run, names=("A", info.label))
    comparisons = [_comparison(runs[0], run, names=("A", info.label), flips=flips, seed=seed, resamples=resamples)
                   for info, run in zip(infos[1:], runs[1:], strict=True)]
    rows = [row for comparison in comparisons for row in comparison.rows]
    for row, adjusted in zip(rows, stats.holm([row.p_value for row in rows]), strict=True):
        row.p_holm = adjusted
    return Report(runs=infos, comparisons=comparisons, warnings=list(dict.fromkeys(warnings)),
                  method=Method(resamples=resamples, seed=seed))


def _doc_id(sample_id: str) -> str:
    return sample_id.rpartition("#")[0] or sample_id


def mismatches(baseline: Run, candidate: Run, *, names: tuple[str, str]) -> list[str]:
    """One line per task whose samples differ between the runs (empty when every sample matches)."""
    a, b = names
    problems = []
    for task in sorted(set(baseline.tasks) | set(candidate.tasks)):
        if task not in candidate.tasks or task not in baseline.tasks:
            problems.append(f"task {task!r} is only in {a if task in baseline.tasks else b}")
            continue
        keys_a, keys_b = baseline.tasks[task].index.keys(), candidate.tasks[task].index.keys()
        only_a, only_b = keys_a - keys_b, keys_b - keys_a
        if not only_a and not only_b:
            continue
        by_doc = {_doc_id(sample_id): sample_id for sample_id, _ in only_b}
        changed = sorted(key for key in only_a if by_doc.get(_doc_id(key[0]), key[0]) != key[0])
        if changed:
            sample_id = changed[0][0]
            problems.append(f"task {task!r}: sample {_doc_id(sample_id)!r} is {sample_id!r} in {a} and "
                            f"{by_doc[_doc_id(sample_id)]!r} in {b}: another version of the dataset "
                            f"({len(changed)} such samples)")
        else:
            example = min(only_a or only_b)[0]
            problems.append(f"task {task!r}: {len(only_a)} samples only in {a}, {len(only_b)} only in {b} "
                            f"(e.g. {example!r})")
    return problems


def provenance_warnings(baseline: Run, candidate: Run, *, names: tuple[str, str]) -> list[str]:
    """A line for each difference of harness version or framework.yml between the runs' shared tasks, and one per run
    for the tasks without a results.yml beside their samples."""
    found: list[str] = []
    unchecked: dict[str, list[str]] = {name: [] for name in names}
    for task in sorted(set(baseline.tasks) & set(candidate.tasks)):
        pa, pb = baseline.provenance.get(task), candidate.provenance.get(task)
        for name, provenance in zip(names, (pa, pb), strict=True):
            if provenance is None:
                unchecked[name].append(task)
        if pa is None or pb is None:
            continue
        if (pa.harness, pa.harness_version) != (pb.harness, pb.harness_version):
            found.append(f"different harness versions: {pa.harness} {pa.harness_version} ({names[0]}) and "
                         f"{pb.harness} {pb.harness_version} ({names[1]})")
        if pa.framework_sha256 != pb.framework_sha256:
            found.append(f"different framework.yml (sha256 {pa.framework_sha256[:12]} in {names[0]}, "
                         f"{pb.framework_sha256[:12]} in {names[1]}) for {task!r}")
    for name, tasks in unchecked.items():
        if tasks:
            shown = ", ".join(map(repr, tasks[:3])) + (f" and {len(tasks) - 3} more" if len(tasks) > 3 else "")
            found.append(f"{name} has no results.yml beside the samples of {shown}: harness versions not checked")
    return found


@dataclass(frozen=True)
class _Pairs:
    """The matched samples of one task: row numbers in each run, aligned."""

    rows_a: npt.NDArray[np.int64]
    rows_b: npt.NDArray[np.int64]
    errors: npt.NDArray[np.bool_]


def _pairs(a: TaskSamples, b: TaskSamples) -> _Pairs:
    found = [(row, b.index[key]) for key, row in a.index.items() if key in b.index]
    rows = np.array(found, dtype=np.int64).reshape(-1, 2)
    rows_a, rows_b = rows[:, 0], rows[:, 1]
    return _Pairs(rows_a, rows_b, a.errors[rows_a] | b.errors[rows_b])


def _comparison(baseline: Run, candidate: Run, *, names: tuple[str, str], flips: bool, seed: int,
                resamples: int) -> Comparison:
    rows: list[Row] = []
    found: list[Flip] = []
    for task in sorted(set(baseline.tasks) | set(candidate.tasks)):
        a, b = baseline.tasks.get(task, TaskSamples(task)), candidate.tasks.get(task, TaskSamples(task))
        pairs = _pairs(a, b)
        for metric in sorted(set(a.scores) | set(b.scores)):
            score_a = _column(a, metric)[pairs.rows_a]
            score_b = _column(b, metric)[pairs.rows_b]
            usable = ~pairs.errors & ~np.isnan(score_a) & ~np.isnan(score_b)
            result = stats.paired(score_a[usable], score_b[usable], rng=stats.generator(seed, task, metric),
                                  resamples=resamples)
            rows.append(_row(task, metric, result, pairs=pairs, a=a, b=b, usable=usable))
            if flips and result.test == "mcnemar":
                changed = np.flatnonzero(usable & (score_a != score_b))
                before = a.records([int(pairs.rows_a[i]) for i in changed])
                after = b.records([int(pairs.rows_b[i]) for i in changed])
                found += [_flip(metric, x, y) for x, y in zip(before, after, strict=True)]
    return Comparison(baseline=names[0], candidate=names[1], rows=rows, flips=found if flips else None)


def _column(samples: TaskSamples, metric: str) -> npt.NDArray[np.float64]:
    column = samples.scores.get(metric)
    return column if column is not None else np.full(len(samples), np.nan)


def _row(task: str, metric: str, result: stats.Paired, *, pairs: _Pairs, a: TaskSamples, b: TaskSamples,
         usable: npt.NDArray[np.bool_]) -> Row:
    matched = len(pairs.rows_a)
    return Row(task=task, metric=metric, baseline_mean=result.mean_a, candidate_mean=result.mean_b,
               difference=result.difference, ci_lower=result.ci[0] if result.ci else None,
               ci_upper=result.ci[1] if result.ci else None, p_value=result.p_value, p_holm=None, test=result.test,
               detectable=result.detectable, n=result.n, matched=matched,
               only_baseline=len(a) - matched, only_candidate=len(b) - matched,
               errors_baseline=int(a.errors[pairs.rows_a].sum()), errors_candidate=int(b.errors[pairs.rows_b].sum()),
               missing=int((~pairs.errors & ~usable).sum()))


def _flip(metric: str, before: SampleRecord, after: SampleRecord) -> Flip:
    return Flip(task=before.task, metric=metric, sample_id=before.sample_id, repeat=before.repeat,
                change="gained" if after.scores[metric] > before.scores[metric] else "lost", input=before.input,
                candidate_input=after.input if after.input != before.input else None, target=before.target,
                baseline_prediction=before.prediction, candidate_prediction=after.prediction)

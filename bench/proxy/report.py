"""The cells of a run, the issue's goals judged from them, and RESULTS.md."""

from __future__ import annotations

import argparse
import os
import statistics
from dataclasses import dataclass, field

OTHER_LOAD_WARNING = 0.2  # cores used by other processes during a cell that make its numbers suspect


@dataclass
class Cell:
    """One measurement: endpoint x concurrency x target."""

    endpoint: str
    concurrency: int
    target: str
    requests: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    rps: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    proxy_cpu_us_per_request: float | None = None
    other_cores: float = 0.0
    busy: list[str] = field(default_factory=list)
    round: int = 1


def find(cells: list[Cell], endpoint: str, concurrency: int, target: str) -> Cell | None:
    """The cell with these coordinates, if it was measured."""
    return next(
        (c for c in cells if (c.endpoint, c.concurrency, c.target) == (endpoint, concurrency, target)),
        None,
    )


@dataclass(frozen=True)
class Goal:
    """One goal of the issue, judged from this run."""

    text: str
    measured: str
    passed: bool | None


def goals(cells: list[Cell], target: str = "ours") -> list[Goal]:
    """The issue's performance goals for ``target`` (our proxy, or a candidate in its place), from this run."""
    result: list[Goal] = []
    ours, nemo = find(cells, "instant", 64, target), find(cells, "instant", 64, "nemo")
    text = f"instant endpoint, c=64: {target} >= 10x NeMo's throughput"
    if ours and nemo and nemo.rps:
        ratio = ours.rps / nemo.rps
        measured = f"{ours.rps:.0f} vs {nemo.rps:.0f} req/s = {ratio:.1f}x"
        result.append(Goal(text, measured, ratio >= 10 and not ours.errors))
    else:
        result.append(Goal(text, "not measured", None))
    ours, direct = find(cells, "instant", 1, target), find(cells, "instant", 1, "direct")
    text = "instant endpoint, c=1: < 1 ms added median latency"
    if ours and direct:
        added = ours.p50_ms - direct.p50_ms
        result.append(
            Goal(
                text,
                f"p50 {ours.p50_ms:.3f} vs {direct.p50_ms:.3f} ms direct = +{added:.3f} ms",
                added < 1.0 and not ours.errors,
            )
        )
    else:
        result.append(Goal(text, "not measured", None))
    for concurrency in (64, 256):
        ours, direct = find(cells, "slow", concurrency, target), find(cells, "slow", concurrency, "direct")
        text = f"50 ms endpoint, c={concurrency}: {target} >= 95% of direct throughput"
        if ours and direct and direct.rps:
            share = ours.rps / direct.rps
            measured = f"{ours.rps:.0f} vs {direct.rps:.0f} req/s = {share:.1%}"
            result.append(Goal(text, measured, share >= 0.95 and not ours.errors))
        else:
            result.append(Goal(text, "not measured", None))
    return result


CANDIDATE_SHARE = 0.9
"""A candidate stack must reach this share of our throughput in every cell (issue 13, item 8)."""


@dataclass(frozen=True)
class Judged:
    """A candidate HTTP stack judged against ours: the four goals, and its throughput per cell."""

    target: str
    goals: list[Goal]
    shares: dict[tuple[str, int], float]  # (endpoint, concurrency) -> candidate req/s / ours
    erred: list[tuple[str, int]]  # cells in which the candidate had errors

    @property
    def passed(self) -> bool | None:
        """True if it meets every goal and >= 90% of ours in every cell; None if not all was measured."""
        if not self.shares or any(goal.passed is None for goal in self.goals):
            return None
        return (all(goal.passed for goal in self.goals) and min(self.shares.values()) >= CANDIDATE_SHARE
                and not self.erred)

    @property
    def verdict(self) -> str:
        """PASS, FAIL or n/a."""
        return "n/a" if self.passed is None else ("PASS" if self.passed else "FAIL")

    @property
    def summary(self) -> str:
        """One line: goals met, the lowest share of ours and where."""
        met = sum(1 for goal in self.goals if goal.passed)
        if not self.shares:
            return f"{met}/{len(self.goals)} goals; no cell to compare with ours"
        (endpoint, concurrency), low = min(self.shares.items(), key=lambda item: item[1])
        errors = f"; errors in {len(self.erred)} cells" if self.erred else ""
        return (f"{met}/{len(self.goals)} goals; throughput {low:.1%} of ours at its lowest ({endpoint}, "
                f"c={concurrency}; needs >= {CANDIDATE_SHARE:.0%} in every cell){errors}")


def judge_candidates(cells: list[Cell]) -> list[Judged]:
    """Every candidate stack measured in this run (targets other than direct, ours, floor, nemo)."""
    names = sorted({cell.target for cell in cells} - {"direct", "ours", "floor", "nemo", "baseline"})
    judged: list[Judged] = []
    for name in names:
        shares: dict[tuple[str, int], float] = {}
        erred: list[tuple[str, int]] = []
        for cell in cells:
            ours = find(cells, cell.endpoint, cell.concurrency, "ours")
            if cell.target == name and ours and ours.rps:
                shares[(cell.endpoint, cell.concurrency)] = cell.rps / ours.rps
            if cell.target == name and cell.errors:
                erred.append((cell.endpoint, cell.concurrency))
        judged.append(Judged(name, goals(cells, name), shares, erred))
    return judged


def markdown(cells: list[Cell], info: dict[str, str], args: argparse.Namespace, measured: list[Cell]) -> str:
    """RESULTS.md: the machine, the table, and the goals with pass/fail."""
    lines = [
        "# Proxy benchmark results",
        "",
        "Written by `bash bench/proxy/run.sh` (bench/README.md explains the method). All numbers come from",
        "one run; compare ratios within it, not across runs or machines.",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in info.items()),
        f"| per cell | {args.warmup:g} s warm-up, then {args.duration:g} s measured; wrk, 1 thread, distinct bodies"
        + (f"; best of {args.rounds} rounds by req/s |" if args.rounds > 1 else " |"),
        "",
        *_busy_warning(cells),
        "## Goals (issue 6)",
        "",
        "| Goal | Measured | Result |",
        "|---|---|---|",
    ]
    for goal in goals(cells):
        verdict = "n/a" if goal.passed is None else ("**PASS**" if goal.passed else "**FAIL**")
        lines.append(f"| {goal.text} | {goal.measured} | {verdict} |")
    lines += _candidates(cells)
    lines += _baseline(measured)
    lines += [
        "",
        "## Cells",
        "",
        "Targets: `direct` (wrk to nginx), `ours` (our proxy, default chain and default processes),",
        "`floor` (bench/proxy/passthrough.py: a bare aiohttp pass-through in one process, no interceptors:",
        "what aiohttp alone costs), candidates (our proxy with the same chain, config and processes on a",
        "maintained HTTP stack, bench/proxy/stacks/: `aiohttp` server and client, `granian` RSGI server or",
        "`uvicorn` with the aiohttp client, all on uvloop; `granian-ourpool`: Granian's server with our own",
        "client, the server half alone), `nemo` (NeMo Evaluator 0.2.8's proxy, default chain).",
        "`vs direct`: throughput as a share of direct to the same endpoint at the same concurrency.",
        "`proxy CPU`: user+system CPU time of the proxy's processes (all threads and children) during the",
        "measured window, divided by the requests answered. `other load`: cores kept busy during the window",
        "by processes that are not part of the benchmark (machine total from /proc/stat minus ours).",
        "",
        "| endpoint | concurrency | target | req/s | vs direct | p50 ms | p95 ms | p99 ms | errors "
        "| proxy CPU µs/req | other load |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for cell in cells:
        direct = find(cells, cell.endpoint, cell.concurrency, "direct")
        share = f"{cell.rps / direct.rps:.1%}" if direct and direct.rps else "-"
        errors = ", ".join(f"{k} {v}" for k, v in cell.errors.items()) or "0"
        cpu = f"{cell.proxy_cpu_us_per_request:.0f}" if cell.proxy_cpu_us_per_request is not None else "-"
        lines.append(
            f"| {cell.endpoint} | {cell.concurrency} | {cell.target} | {cell.rps:.0f} | {share} | "
            f"{cell.p50_ms:.2f} | {cell.p95_ms:.2f} | {cell.p99_ms:.2f} | {errors} | {cpu} | {cell.other_cores:.2f} |"
        )
    busy = sorted({name for cell in cells for name in cell.busy})
    lines += [
        "",
        f"Builds or compilers seen running during the cells: {', '.join(busy) if busy else 'none'}.",
        "",
    ]
    return "\n".join(lines)


def _candidates(cells: list[Cell]) -> list[str]:
    """The candidate stacks: verdicts, then req/s per cell beside ours with the share."""
    judged = judge_candidates(cells)
    if not judged:
        return []
    lines = [
        "",
        "## Candidate HTTP stacks (issue 13)",
        "",
        f"A candidate passes if it meets the four goals above in our proxy's place and reaches at least "
        f"{CANDIDATE_SHARE:.0%} of our proxy's throughput in every cell, without errors.",
        "",
        "| Candidate | 10x NeMo (instant, c=64) | < 1 ms added (instant, c=1) | >= 95% of direct (50 ms, c=64) "
        "| >= 95% of direct (50 ms, c=256) | lowest share of ours | Result |",
        "|---|---|---|---|---|---|---|",
    ]
    for one in judged:
        met = [f"{_verdict(goal.passed)} ({goal.measured.rsplit('= ', 1)[-1]})" for goal in one.goals]
        low = f"{min(one.shares.values()):.1%}" if one.shares else "-"
        lines.append(f"| {one.target} | {' | '.join(met)} | {low} | **{one.verdict}** |")
    header = "| endpoint | concurrency | ours req/s | " + " | ".join(f"{one.target} req/s | share" for one in judged)
    lines += ["", header + " |", "|---|---:|---:|" + "---:|---:|" * len(judged)]
    for endpoint, concurrency in sorted({(c.endpoint, c.concurrency) for c in cells}):
        ours = find(cells, endpoint, concurrency, "ours")
        row = [endpoint, str(concurrency), f"{ours.rps:.0f}" if ours else "-"]
        for one in judged:
            cell = find(cells, endpoint, concurrency, one.target)
            share = one.shares.get((endpoint, concurrency))
            row += [f"{cell.rps:.0f}" if cell else "-", f"{share:.1%}" if share is not None else "-"]
        lines.append("| " + " | ".join(row) + " |")
    return lines


@dataclass(frozen=True)
class Paired:
    """Ours against the baseline in one endpoint x concurrency: medians over the rounds of the ratio within each
    round (the two measured one after the other, so a change of machine load hits both alike)."""

    endpoint: str
    concurrency: int
    rounds: int
    rps: float
    cpu: float
    baseline_rps: float
    ours_rps: float
    baseline_cpu: float
    ours_cpu: float


def against_baseline(measured: list[Cell]) -> list[Paired]:
    """Every endpoint x concurrency measured with both ours and the baseline (every round of it)."""
    by_key = {(c.endpoint, c.concurrency, c.target, c.round): c for c in measured}
    rows = []
    for endpoint, concurrency in sorted({(c.endpoint, c.concurrency) for c in measured}):
        pairs: list[tuple[Cell, Cell, float, float]] = []  # ours, baseline, and their CPU per request
        for cell_round in sorted({c.round for c in measured}):
            ours = by_key.get((endpoint, concurrency, "ours", cell_round))
            base = by_key.get((endpoint, concurrency, "baseline", cell_round))
            if ours and base and base.rps and ours.proxy_cpu_us_per_request and base.proxy_cpu_us_per_request:
                pairs.append((ours, base, ours.proxy_cpu_us_per_request, base.proxy_cpu_us_per_request))
        if not pairs:
            continue
        rows.append(Paired(
            endpoint, concurrency, len(pairs),
            rps=statistics.median(o.rps / b.rps for o, b, _, _ in pairs),
            cpu=statistics.median(o_cpu / b_cpu for _, _, o_cpu, b_cpu in pairs),
            baseline_rps=statistics.median(b.rps for _, b, _, _ in pairs),
            ours_rps=statistics.median(o.rps for o, _, _, _ in pairs),
            baseline_cpu=statistics.median(b_cpu for _, _, _, b_cpu in pairs),
            ours_cpu=statistics.median(o_cpu for _, _, o_cpu, _ in pairs),
        ))
    return rows


def _baseline(measured: list[Cell]) -> list[str]:
    """Ours beside the baseline (``--baseline-cmd``), cell by cell."""
    rows = against_baseline(measured)
    if not rows:
        return []
    lines = [
        "",
        "## Ours against the baseline (before and after a change)",
        "",
        "Medians over the rounds; the ratios are taken within each round (ours and the baseline measured one after",
        "the other), then their median.",
        "",
        "| endpoint | concurrency | rounds | baseline req/s | ours req/s | ours / baseline | baseline CPU µs/req "
        "| ours CPU µs/req | CPU ours / baseline |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row.endpoint} | {row.concurrency} | {row.rounds} | {row.baseline_rps:.0f} "
                     f"| {row.ours_rps:.0f} | {row.rps:.1%} | {row.baseline_cpu:.0f} | {row.ours_cpu:.0f} "
                     f"| {row.cpu:.1%} |")
    return lines


def _verdict(passed: bool | None) -> str:
    return "n/a" if passed is None else ("pass" if passed else "FAIL")


def _busy_warning(cells: list[Cell]) -> list[str]:
    busy = [cell for cell in cells if cell.busy or cell.other_cores >= OTHER_LOAD_WARNING]
    if not busy:
        return []
    worst = max(cell.other_cores for cell in cells)
    return [
        f"**Warning: other processes (builds, tests of other sessions) kept up to {worst:.2f} cores busy during "
        f"{len(busy)} of {len(cells)} cells (column `other load`); they share the machine's "
        f"{os.cpu_count()} cores, so absolute numbers are low and noisy.**",
        "",
    ]

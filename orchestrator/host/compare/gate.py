"""`evals gate`: a policy's rules judged on the comparison of a baseline and a candidate.

A rule's verdict compares the 95% CI of the difference (candidate - baseline) with ``-max_drop``: PASS when the
CI's lower bound is at or above it, FAIL when its upper bound is below it, INCONCLUSIVE when the CI straddles it
(or no pair could be compared). The decision: NO-GO when a critical rule FAILs, else INCONCLUSIVE when a critical
rule is INCONCLUSIVE, else GO; advisory rules never change it. Exit codes: GO 0, NO-GO 1, INCONCLUSIVE 3.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Group
from rich.table import Table
from rich.text import Text

from orchestrator.host.compare.render import cell, markdown_table, number
from orchestrator.host.compare.report import Report, Row
from orchestrator.host.records.report import literal
from orchestrator.schema.errors import ConfigError
from orchestrator.schema.gate import GatePolicy, GateRule, Tier
from orchestrator.schema.loading import YamlDocument, read_yaml, validate

Verdict = Literal["PASS", "FAIL", "INCONCLUSIVE"]
Decision = Literal["GO", "NO-GO", "INCONCLUSIVE"]
EXIT_CODES: dict[Decision, int] = {"GO": 0, "NO-GO": 1, "INCONCLUSIVE": 3}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuleResult(_Strict):
    """One rule and its verdict."""

    task: str
    metric: str
    tier: Tier
    max_drop: float
    difference: float | None = Field(description="Candidate - baseline.")
    ci_lower: float | None
    ci_upper: float | None
    n: int = Field(description="Pairs compared.")
    verdict: Verdict
    reason: str


class GateReport(_Strict):
    """The output of `evals gate --json`."""

    decision: Decision
    exit_code: int
    rules: list[RuleResult]
    comparison: Report = Field(description="The comparison the rules were judged on (every row, warnings).")


def load_policy(path: Path) -> tuple[GatePolicy, YamlDocument]:
    """The policy file, validated like every config (errors at file:line, exit 2), and its YAML for line numbers."""
    doc = read_yaml(path)
    if doc.data is not None and not isinstance(doc.data, dict):
        raise ConfigError("expected a mapping at the top level", where=doc.where(()))
    return validate(GatePolicy, doc.data, doc=doc, source=str(path)), doc


def check_names(policy: GatePolicy, report: Report, doc: YamlDocument) -> None:
    """Refuse a rule naming a task or metric the runs do not have, with the available names."""
    metrics: dict[str, list[str]] = {}
    for row in report.comparisons[0].rows:
        metrics.setdefault(row.task, []).append(row.metric)
    for index, rule in enumerate(policy.rules):
        if rule.task not in metrics:
            raise _unknown(f"no task {rule.task!r} in the runs", rule.task, sorted(metrics),
                           where=doc.where(("rules", index, "task")))
        if rule.metric not in metrics[rule.task]:
            raise _unknown(f"task {rule.task!r} has no metric {rule.metric!r} in the runs", rule.metric,
                           metrics[rule.task], where=doc.where(("rules", index, "metric")))


def _unknown(message: str, name: str, available: list[str], *, where: str) -> ConfigError:
    close = difflib.get_close_matches(name, available, n=3)
    hint = (f"did you mean {', '.join(map(repr, close))}? " if close else "") + f"available: {', '.join(available)}"
    return ConfigError(message, where=where, hint=hint)


def verdict(row: Row, max_drop: float) -> tuple[Verdict, str]:
    """PASS, FAIL or INCONCLUSIVE for one row and the largest drop allowed, with why."""
    if row.ci_lower is None or row.ci_upper is None:
        return "INCONCLUSIVE", "no pair to compare (no matched sample scored on both sides without an error)"
    if row.ci_lower >= -max_drop:
        return "PASS", f"the CI's lower bound {number(row.ci_lower, signed=True)} is at or above -{max_drop:g}"
    if row.ci_upper < -max_drop:
        return "FAIL", f"the CI's upper bound {number(row.ci_upper, signed=True)} is below -{max_drop:g}"
    return "INCONCLUSIVE", f"the CI straddles -{max_drop:g}: more samples would tell"


def judge(policy: GatePolicy, report: Report) -> GateReport:
    """Every rule's verdict and the decision (see the module docstring)."""
    rows = {(row.task, row.metric): row for row in report.comparisons[0].rows}
    results = [_result(rule, rows[(rule.task, rule.metric)]) for rule in policy.rules]
    critical = {result.verdict for result in results if result.tier == "critical"}
    decision: Decision = "NO-GO" if "FAIL" in critical else "INCONCLUSIVE" if "INCONCLUSIVE" in critical else "GO"
    return GateReport(decision=decision, exit_code=EXIT_CODES[decision], rules=results, comparison=report)


def _result(rule: GateRule, row: Row) -> RuleResult:
    found, reason = verdict(row, rule.max_drop)
    return RuleResult(task=rule.task, metric=rule.metric, tier=rule.tier, max_drop=rule.max_drop,
                      difference=row.difference, ci_lower=row.ci_lower, ci_upper=row.ci_upper, n=row.n,
                      verdict=found, reason=reason)


STYLES = {"PASS": "green", "FAIL": "red", "INCONCLUSIVE": "yellow", "GO": "bold green", "NO-GO": "bold red"}
HEADERS = ["task", "metric", "tier", "max drop", "difference", "95% CI", "n", "verdict"]


def _cells(result: RuleResult) -> list[str]:
    ci = "n/a" if result.ci_lower is None or result.ci_upper is None else \
        f"[{number(result.ci_lower, signed=True)}, {number(result.ci_upper, signed=True)}]"
    return [f"{result.max_drop:g}", number(result.difference, signed=True), ci, str(result.n), result.verdict]


def summary(gate: GateReport) -> str:
    """One line: the decision and what made it."""
    counts = {name: sum(r.verdict == name and r.tier == "critical" for r in gate.rules)
              for name in ("PASS", "FAIL", "INCONCLUSIVE")}
    advisory = sum(r.verdict != "PASS" and r.tier == "advisory" for r in gate.rules)
    text = (f"{gate.decision}: critical rules {counts['PASS']} PASS, {counts['FAIL']} FAIL, "
            f"{counts['INCONCLUSIVE']} INCONCLUSIVE")
    return text + (f"; {advisory} advisory rule(s) not PASS (they never change the decision)" if advisory else "")


def table(gate: GateReport) -> Group:
    """The rules as a rich table and the decision."""
    runs = gate.comparison.runs
    result = Table(title=literal(f"evals gate: A (baseline) {runs[0].source} vs B {runs[1].source}"),
                   caption="difference: B - A; a rule FAILs when the whole 95% CI is below -max drop")
    for index, header in enumerate(HEADERS):
        result.add_column(header, justify="left" if index < 3 else "right")
    for rule in gate.rules:
        result.add_row(literal(rule.task), literal(rule.metric), rule.tier, *_cells(rule),
                       style=STYLES[rule.verdict])
    return Group(result, Text(summary(gate), style=STYLES.get(gate.decision, "bold yellow")))


def markdown(gate: GateReport) -> str:
    """The rules and the decision as GitHub-flavoured Markdown."""
    runs = gate.comparison.runs
    lines = [f"### evals gate: {gate.decision}", "",
             f"A (baseline): {cell(runs[0].source)}; B: {cell(runs[1].source)}", ""]
    lines += markdown_table(HEADERS, [[cell(r.task), cell(r.metric), r.tier, *_cells(r)] for r in gate.rules],
                             right_from=3)
    lines += ["", cell(summary(gate)), ""]
    lines += [f"> **warning:** {cell(warning)}" for warning in gate.comparison.warnings]
    return "\n".join(lines).rstrip() + "\n"

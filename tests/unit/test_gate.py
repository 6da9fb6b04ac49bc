"""`evals gate`: the policy file (validated like every config), each rule's verdict, the decision and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from orchestrator.host.cli import app as cli
from orchestrator.host.compare.gate import verdict
from orchestrator.host.compare.report import Row
from tests.unit.sample_runs import records, write_run


def gate(policy: Path, a: Path, b: Path, *extra: str) -> tuple[int, str, str]:
    """`evals gate` through typer's runner; exit codes 0, 1 and 3 are the decision's."""
    result = CliRunner().invoke(cli.full_app(), ["gate", "--policy", str(policy), str(a), str(b), *extra],
                                env={"COLUMNS": "200"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gate.yml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """Baseline A; B with a clear drop on gsm8k (0.8 -> 0.5 over 400 samples), the same mmlu; C equal to A on
    gsm8k but 40 samples only, so a small drop cannot be told from noise."""
    rng = np.random.default_rng(3)
    right = (rng.random(400) < 0.8).astype(float)
    dropped = np.where(rng.random(400) < 0.4, 0.0, right)
    mmlu = (rng.random(300) < 0.6).astype(float)
    a = write_run(tmp_path / "A", records("gsm8k", right.tolist()) + records("mmlu", mmlu.tolist(), metric="acc"))
    b = write_run(tmp_path / "B", records("gsm8k", dropped.tolist()) + records("mmlu", mmlu.tolist(), metric="acc"))
    small_a = write_run(tmp_path / "small-A", records("gsm8k", [1, 0] * 20))
    small_c = write_run(tmp_path / "small-C", records("gsm8k", [1, 0] * 18 + [0, 0] * 2))
    return a, b, small_a, small_c


def test_a_clear_drop_on_a_critical_rule_is_no_go_exit_1(tmp_path: Path, runs: tuple[Path, ...]) -> None:
    rules = policy(tmp_path, "rules:\n  - {task: gsm8k, metric: acc, max_drop: 0.05}\n"
                             "  - {task: mmlu, metric: acc, max_drop: 0.0}\n")
    code, out, _ = gate(rules, runs[0], runs[1])
    assert code == 1
    assert "FAIL" in out and "NO-GO: critical rules 1 PASS, 1 FAIL, 0 INCONCLUSIVE" in out


def test_the_same_drop_on_an_advisory_rule_never_makes_no_go(tmp_path: Path, runs: tuple[Path, ...]) -> None:
    rules = policy(tmp_path, "rules:\n  - {task: gsm8k, metric: acc, max_drop: 0.05, tier: advisory}\n"
                             "  - {task: mmlu, metric: acc, max_drop: 0.0}\n")
    code, out, _ = gate(rules, runs[0], runs[1], "--json")
    assert code == 0
    data = json.loads(out)
    assert data["decision"] == "GO" and data["exit_code"] == 0
    assert [(r["tier"], r["verdict"]) for r in data["rules"]] == [("advisory", "FAIL"), ("critical", "PASS")]


def test_a_ci_straddling_the_threshold_is_inconclusive_exit_3(tmp_path: Path, runs: tuple[Path, ...]) -> None:
    rules = policy(tmp_path, "rules:\n  - {task: gsm8k, metric: acc, max_drop: 0.02}\n")
    code, out, _ = gate(rules, runs[2], runs[3], "--markdown")
    assert code == 3
    assert out.startswith("### evals gate: INCONCLUSIVE")
    assert "| gsm8k | acc | critical | 0.02 | -0.0500 |" in out


def test_a_run_gated_against_itself_passes_every_rule(tmp_path: Path, runs: tuple[Path, ...]) -> None:
    rules = policy(tmp_path, "rules:\n  - {task: gsm8k, metric: acc, max_drop: 0}\n"
                             "  - {task: mmlu, metric: acc, max_drop: 0, tier: advisory}\n")
    code, out, _ = gate(rules, runs[1], runs[1], "--json")
    assert code == 0
    assert {r["verdict"] for r in json.loads(out)["rules"]} == {"PASS"}


@pytest.mark.parametrize(("text", "message"), [
    ("rules:\n  - {task: gsm8k_cot, metric: acc, max_drop: 0.02}\n",
     "gate.yml:2: no task 'gsm8k_cot' in the runs (did you mean 'gsm8k'? available: gsm8k, mmlu)"),
    ("rules:\n  - task: gsm8k\n    metric: exact_match\n    max_drop: 0.02\n",
     "gate.yml:3: task 'gsm8k' has no metric 'exact_match' in the runs (available: acc)"),
    ("rules:\n  - {task: gsm8k, metric: acc, max_drop: -0.1}\n", "gate.yml:2: rules.0.max_drop"),
    ("rules:\n  - {task: gsm8k, metric: acc, max_drop: .nan}\n", "gate.yml:2: rules.0.max_drop"),
    ("rules:\n  - {task: gsm8k, metric: acc, max_drop: 0.1, teir: advisory}\n",
     "unknown key 'rules.0.teir' (did you mean 'tier'?"),
    ("rules:\n  - {task: gsm8k, metric: acc, max_drop: 0.1, tier: blocker}\n", "rules.0.tier"),
    ("rules: []\n", "rules"),
    ("rules:\n  - {task: t, metric: m, max_drop: 0}\n  - {task: t, metric: m, max_drop: 1}\n", "has two rules"),
    ("rules: [\n", "malformed YAML"),
])
def test_a_bad_policy_is_one_line_at_file_line_exit_2(tmp_path: Path, runs: tuple[Path, ...], text: str,
                                                      message: str, capsys: pytest.CaptureFixture[str]) -> None:
    rules = policy(tmp_path, text)
    code = cli.main(["gate", "--policy", str(rules), str(runs[0]), str(runs[1])])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert message in err, err
    assert len(err.strip().splitlines()) == 1


def test_runs_that_do_not_match_are_refused_exit_2(tmp_path: Path, runs: tuple[Path, ...],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    rules = policy(tmp_path, "rules:\n  - {task: gsm8k, metric: acc, max_drop: 0.02}\n")
    assert cli.main(["gate", "--policy", str(rules), str(runs[0]), str(runs[2])]) == 2
    assert "task 'gsm8k': 360 samples only in A, 0 only in B" in capsys.readouterr().err
    code, out, _ = gate(rules, runs[0], runs[2], "--allow-partial", "--json")
    assert code in (0, 1, 3) and json.loads(out)["rules"][0]["n"] == 40


def row(lower: float | None, upper: float | None, n: int = 100) -> Row:
    return Row(task="t", metric="m", baseline_mean=None, candidate_mean=None, difference=None, ci_lower=lower,
               ci_upper=upper, p_value=None, p_holm=None, test=None, detectable=None, n=n, matched=n,
               only_baseline=0, only_candidate=0, errors_baseline=0, errors_candidate=0, missing=0)


@pytest.mark.parametrize(("lower", "upper", "max_drop", "expected"), [
    (0.0, 0.0, 0.0, "PASS"), (-0.02, 0.01, 0.02, "PASS"), (-0.03, 0.01, 0.02, "INCONCLUSIVE"),
    (-0.05, -0.02, 0.02, "INCONCLUSIVE"), (-0.05, -0.021, 0.02, "FAIL"), (None, None, 0.5, "INCONCLUSIVE"),
])
def test_verdict_compares_the_ci_with_minus_max_drop(lower: float | None, upper: float | None, max_drop: float,
                                                     expected: str) -> None:
    assert verdict(row(lower, upper), max_drop)[0] == expected

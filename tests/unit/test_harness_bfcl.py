"""The bfcl harness folder: its parser on a recorded BFCL output (images/bfcl/fixtures/output: nvidia-bfcl 26.3 run
by run_bfcl.py against the test endpoint; simple x4 and multi_turn_base x1 with native calls, live_irrelevance x1
against a closed port), and its framework's commands rendered and run against a stand-in ``python``."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from orchestrator.runtime.harness_parser import load_parsers
from orchestrator.runtime.render import render_command
from orchestrator.schema.config import Evaluation
from orchestrator.schema.errors import ResultsParseError
from orchestrator.schema.framework import FrameworkDefinition
from orchestrator.schema.loading import load_model
from orchestrator.schema.resolve import RunRequest, resolve_run
from orchestrator.schema.samples import document_hash

HARNESS = Path(__file__).resolve().parents[2] / "images" / "bfcl"
OUTPUT = HARNESS / "fixtures" / "output"
URL = "http://localhost:8000/v1/chat/completions?a=b,c=d"


def test_scores_per_category_and_micro_averages() -> None:
    results = load_parsers(HARNESS).parse(OUTPUT)
    tasks = {name: (task.metrics["accuracy"].scores["accuracy"].value, task.metrics["accuracy"].scores[
        "accuracy"].stats.count) for name, task in results.tasks.items()}
    # BFCL's own counts: 2 of 4 simple calls right, the multi-turn entry wrong, and the irrelevance entry whose
    # request failed counted right by BFCL (its error text parses as no call)
    assert tasks == {"simple": (0.5, 4), "multi_turn_base": (0.0, 1), "live_irrelevance": (1.0, 1)}
    groups = {name: group.metrics["accuracy"].scores["accuracy"].value for name, group in results.groups.items()}
    assert groups == {"bfcl": 0.5, "bfcl_non_live": 0.5, "bfcl_multi_turn": 0.0, "bfcl_live": 1.0}


def test_samples_one_per_entry_with_status_target_and_stable_id() -> None:
    records = load_parsers(HARNESS).parse_samples(OUTPUT)
    summary = [(r.task, r.sample_id.split("#")[0], r.status, r.scores) for r in records]
    assert sorted(summary) == sorted([
        ("simple", "simple_0", "scored", {"accuracy": 1.0}), ("simple", "simple_1", "scored", {"accuracy": 1.0}),
        ("simple", "simple_2", "scored", {"accuracy": 0.0}), ("simple", "simple_3", "unscored", {"accuracy": 0.0}),
        ("multi_turn_base", "multi_turn_base_0", "scored", {"accuracy": 0.0}),
        ("live_irrelevance", "live_irrelevance_0-0-0", "error", {}),
    ])
    by_id = {r.sample_id.split("#")[0]: r for r in records}
    entries = {row["id"]: row for row in map(json.loads, (OUTPUT / "bfcl_entries.jsonl").read_text().splitlines())}
    assert by_id["simple_1"].sample_id == f"simple_1#{document_hash(entries['simple_1']['document'])}"
    assert by_id["simple_1"].target == [{"math.factorial": {"number": [5]}}]
    assert json.loads(by_id["simple_1"].prediction or "") == [{"math_factorial": "{\"number\": 5}"}]
    assert by_id["simple_3"].error == "ast_decoder:decoder_failed"
    error = by_id["live_irrelevance_0-0-0"]
    assert error.prediction is None and error.error and error.error.startswith("Error during inference")
    first = by_id["simple_0"].input
    assert isinstance(first, list) and [m.role for m in first] == ["user"]


def test_missing_or_ambiguous_output_is_a_parse_error(tmp_path: Path) -> None:
    parsers = load_parsers(HARNESS)
    with pytest.raises(ResultsParseError, match="expected one model folder"):
        parsers.parse(tmp_path)
    shutil.copytree(OUTPUT, tmp_path / "out")
    (tmp_path / "out" / "score" / "other-model").mkdir()
    with pytest.raises(ResultsParseError, match="found other-model, test-model"):
        parsers.parse(tmp_path / "out")


def resolve(**kwargs: object) -> Evaluation:
    values: dict[str, object] = {"model_id": "org/model;$(touch PWNED)", "model_url": URL, "model_type": "chat"}
    values.update(kwargs)
    return resolve_run(load_model(FrameworkDefinition, HARNESS / "framework.yml"),
                       RunRequest(**values))  # type: ignore[arg-type]


def argv_of(command: str, tmp_path: Path) -> list[str]:
    """Run the rendered command with a stand-in ``python`` that records its arguments."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    fake = bindir / "python"
    fake.write_text("#!/usr/bin/env python3\nimport json, os, sys\n"
                    f"open({str(tmp_path / 'argv.json')!r}, 'w').write(json.dumps(sys.argv[1:]))\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    subprocess.run(["bash", "-c", command], check=True, cwd=tmp_path,
                   env={**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"})
    argv: list[str] = json.loads((tmp_path / "argv.json").read_text())
    return argv


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_native_task_renders_values_intact(tmp_path: Path) -> None:
    out = tmp_path / "out dir; $(touch PWNED)"
    evaluation = resolve(eval_type="bfclv3_ast", output_dir=str(out), api_key_name="MY_KEY",
                         overrides="config.params.limit_samples=3,config.params.max_new_tokens=64")
    argv = argv_of(render_command(evaluation), tmp_path)
    assert argv[:2] == ["/opt/evals/bfcl/run_bfcl.py", "run"]
    assert option(argv, "--categories") == "multi_turn,ast"
    assert option(argv, "--model") == "org/model;$(touch PWNED)" and option(argv, "--url") == URL
    assert option(argv, "--output_dir") == str(out) and option(argv, "--api_key_var") == "MY_KEY"
    assert "--native_calling" in argv
    assert [option(argv, name) for name in ("--limit", "--max_tokens", "--temperature")] == ["3", "64", "0.001"]
    assert not list(tmp_path.glob("**/PWNED"))


def test_prompting_tasks_and_data_step(tmp_path: Path) -> None:
    for task, categories in (("bfclv3", "all"), ("bfclv3_ast_prompting", "multi_turn,ast"), ("bfclv2", "single_turn"),
                             ("bfclv2_ast_prompting", "ast"), ("bfcl.live_simple", "live_simple")):
        evaluation = resolve(eval_type=task, output_dir=str(tmp_path / "o"))
        argv = argv_of(render_command(evaluation), tmp_path)
        assert option(argv, "--categories") == categories and "--native_calling" not in argv, task
        assert "--limit" not in argv and "--api_key_var" not in argv
        data = argv_of(render_command(evaluation, data=True), tmp_path)
        assert data == ["/opt/evals/bfcl/run_bfcl.py", "check", "--categories", categories]


def test_with_the_adapter_off_the_harness_owns_retries_and_timeout(tmp_path: Path) -> None:
    evaluation = resolve(eval_type="bfclv3_simple", output_dir=str(tmp_path / "o"),
                         overrides="target.api_endpoint.adapter_config.enabled=false,config.params.max_retries=2,"
                                   "config.params.request_timeout=7")
    argv = argv_of(render_command(evaluation), tmp_path)
    assert (option(argv, "--attempts"), option(argv, "--timeout")) == ("3", "7")

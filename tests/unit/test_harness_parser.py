"""A harness's parser is found in its own folder (orchestrator/runtime/harness_parser.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.runtime import cli as runtime_cli
from orchestrator.runtime.harness_parser import load_parsers, module_name, parser_path
from orchestrator.schema.errors import ResultsParseError
from tests.unit.test_cli import FAKE, REPO, URL

MODULE = '''
from pathlib import Path
from orchestrator.schema.results import EvaluationResult

def parse(output_dir: Path) -> EvaluationResult:
    return EvaluationResult(tasks={}, groups={})

def parse_samples(output_dir: Path) -> list:
    return ["sample-of-" + output_dir.name]
'''


def test_module_beside_framework_is_loaded(tmp_path: Path) -> None:
    folder = tmp_path / "my-harness"
    folder.mkdir()
    assert module_name(folder) == "parse_my_harness"
    assert parser_path(folder) is None
    (folder / "parse_my_harness.py").write_text(MODULE)
    parsers = load_parsers(folder)
    assert list(parsers.parse_samples(tmp_path / "out")) == ["sample-of-out"]  # type: ignore[comparison-overlap]
    assert load_parsers(folder).parse is parsers.parse  # imported once per process


def test_package_form_and_missing_functions(tmp_path: Path) -> None:
    folder = tmp_path / "pkg-harness"
    (folder / "parse_pkg_harness").mkdir(parents=True)
    (folder / "parse_pkg_harness" / "__init__.py").write_text("from .impl import parse, parse_samples\n")
    (folder / "parse_pkg_harness" / "impl.py").write_text(MODULE)
    assert list(load_parsers(folder).parse_samples(tmp_path / "x")) == ["sample-of-x"]  # type: ignore[comparison-overlap]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "parse_broken.py").write_text("def parse(d): ...\n")
    with pytest.raises(ResultsParseError, match="parse_samples"):
        load_parsers(broken)
    with pytest.raises(ResultsParseError, match="no results parser"):
        load_parsers(tmp_path / "empty")


def test_a_framework_without_its_parser_fails_before_the_harness_runs(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "no-parser"
    folder.mkdir()
    framework = folder / "framework.yml"
    framework.write_text(FAKE.read_text().replace("script: tests/", f"script: {REPO}/tests/"))
    out = tmp_path / "out"
    code = runtime_cli.main(["run_eval", "--eval_type", "gsm8k", "--model_id", "m", "--model_url", URL,
                             "--model_type", "chat", "--output_dir", str(out)], framework=framework)
    err = capsys.readouterr().err
    assert code != 0 and f"no results parser in {folder}" in err and "parse_no_parser.py" in err
    assert not (out / "logs" / "harness.log").exists()

"""A harness is one folder: every folder under images/ with a framework.yml is a complete harness
(orchestrator/runtime/harnesses.py), and nothing else in orchestrator/ or pyproject.toml names one."""

from __future__ import annotations

import ast
import shutil
import sys
import tomllib
from pathlib import Path

import pytest

from orchestrator.runtime.harnesses import SOURCE_IMAGES, dockerfile_rules, entry_point, harness_dirs, incomplete

REPO = Path(__file__).resolve().parents[2]
HARNESSES = harness_dirs()
ALLOWED_IMPORTS = sys.stdlib_module_names | {"__future__", "orchestrator", "pydantic", "yaml", "numpy"}
"""What a parser may import: the runtime venv's (the project's core dependencies), never the harness's."""


def test_the_source_tree_has_its_harnesses() -> None:
    assert SOURCE_IMAGES == REPO / "images"
    names = [folder.name for folder in HARNESSES]
    assert {"lm-eval", "vlmevalkit"} <= set(names)
    assert "reference-endpoint" not in names  # an image without framework.yml is no harness


@pytest.mark.parametrize("folder", HARNESSES, ids=[folder.name for folder in HARNESSES])
def test_every_harness_folder_is_complete(folder: Path) -> None:
    assert incomplete(folder) == []


@pytest.mark.parametrize("folder", HARNESSES, ids=[folder.name for folder in HARNESSES])
def test_parsers_import_only_the_runtime(folder: Path) -> None:
    """A parser runs in the runtime's venv: the standard library, orchestrator and the runtime's own dependencies
    (pydantic, pyyaml, numpy), never the harness."""
    files = sorted(folder.glob("parse_*.py")) + sorted(folder.glob("parse_*/*.py"))
    assert files
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and not node.level}
        modules |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert {m for m in modules if m.split(".")[0] not in ALLOWED_IMPORTS} == set(), path


def test_an_incomplete_folder_is_told_what_it_lacks(tmp_path: Path) -> None:
    folder = tmp_path / "lm-eval"
    shutil.copytree(REPO / "images" / "lm-eval", folder, ignore=shutil.ignore_patterns("__pycache__"))
    assert incomplete(folder) == []
    dockerfile = folder / "Dockerfile"
    text = dockerfile.read_text()
    for what, pattern in dockerfile_rules("lm-eval").items():  # each rule matters: break one at a time
        broken = text.replace("core_evals_lm_eval", "core_evals_x").replace('evals.harness="lm-eval"', "") \
            if "core_evals" in pattern or "evals\\.harness" in pattern else text.replace("/opt/evals/lm-eval/", "/x/")
        dockerfile.write_text(broken)
        assert f"{dockerfile}: {what}" in incomplete(folder)
    dockerfile.write_text(text)
    (folder / "README.md").unlink()
    (folder / "conformance.yml").write_text((folder / "conformance.yml").read_text().replace("task: ", "task: no_"))
    shutil.rmtree(folder / "parse_lm_eval")
    problems = incomplete(folder)
    assert f"{folder / 'README.md'}: missing" in problems
    assert any(p.startswith("conformance.yml: task 'no_") for p in problems)
    assert any(p.startswith(f"parser: no results parser in {folder}") for p in problems)
    renamed = tmp_path / "other"
    folder.rename(renamed)
    assert "framework.yml: framework.name is 'lm-eval', not the folder's name" in incomplete(renamed)


def test_conformance_files_must_exist_and_keys_are_checked(tmp_path: Path) -> None:
    folder = tmp_path / "lm-eval"
    shutil.copytree(REPO / "images" / "lm-eval", folder, ignore=shutil.ignore_patterns("__pycache__"))
    spec = folder / "conformance.yml"
    spec.write_text(spec.read_text() + "script: fixtures/nope.json\n")
    assert f"conformance.yml: script {folder / 'fixtures/nope.json'} does not exist" in incomplete(folder)
    spec.write_text(spec.read_text() + "budget: 3\n")
    assert any("budget" in p for p in incomplete(folder))


def _named(tree: ast.AST) -> list[tuple[int, str]]:
    """String constants that are not docstrings, and identifiers, of a module."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            found.append((node.lineno, node.value))
        elif isinstance(node, ast.Name | ast.FunctionDef | ast.ClassDef):
            found.append((node.lineno, node.id if isinstance(node, ast.Name) else node.name))
        elif isinstance(node, ast.Attribute):
            found.append((node.lineno, node.attr))
    return found


def names_a_harness(value: str, harness: str) -> bool:
    """``value`` is the harness's name, module or entry point, or a path into its folder (an example in a message,
    e.g. ``evals/lm-eval:latest``, is not)."""
    underscored = harness.replace("-", "_")
    return (value in {harness, underscored, entry_point(harness), f"parse_{underscored}"}
            or f"images/{harness}" in value)


def test_orchestrator_code_names_no_harness() -> None:
    """No list or mapping of harnesses in orchestrator/: a new harness folder needs no edit there."""
    offenders = []
    for path in sorted((REPO / "orchestrator").rglob("*.py")):
        for line, value in _named(ast.parse(path.read_text(encoding="utf-8"))):
            offenders += [f"{path.relative_to(REPO)}:{line}: {value!r}" for folder in HARNESSES
                          if names_a_harness(value, folder.name)]
    assert offenders == []


def test_the_check_would_see_a_harness_list() -> None:
    code = 'HARNESS_DIRS = {"lm_eval": "lm-eval"}\ndef vlmevalkit() -> int:\n    """core_evals_vlmevalkit."""\n'
    named = [value for _, value in _named(ast.parse(code))]
    found = sorted(v for v in named if any(names_a_harness(v, h) for h in ("lm-eval", "vlmevalkit")))
    assert found == ["lm-eval", "lm_eval", "vlmevalkit"]  # the key, the value, the function; not the docstring


def test_pyproject_names_no_harness() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["scripts"] == {"evals": "orchestrator.host.cli.app:main",
                                             "core_evals": "orchestrator.runtime.entrypoints:core_evals"}
    assert "images/*/parse_*" in project["tool"]["mypy"]["files"]
    assert "data-files" not in project.get("tool", {}).get("setuptools", {})

"""The contract itself: shipped YAML validates, JSON Schemas are current, layers import in one direction."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import ValidationError

from orchestrator.schema.contract import SCHEMA_DIR
from orchestrator.schema.export import SCHEMAS, render_schema
from orchestrator.schema.framework import FrameworkDefinition
from orchestrator.schema.loading import load_model

REPO = Path(__file__).resolve().parents[2]
SHIPPED_FRAMEWORKS = [*sorted(REPO.glob("images/*/framework.yml")),
                      *sorted(REPO.glob("tests/fixtures/**/framework.yml"))]


@pytest.mark.parametrize("path", SHIPPED_FRAMEWORKS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_framework_file_validates(path: Path) -> None:
    definition = load_model(FrameworkDefinition, path)
    assert definition.evaluations
    for task in definition.evaluations:
        assert task.description.strip(), task.name
        defaults = definition.defaults.config
        assert task.endpoint_types or (defaults is not None and defaults.supported_endpoint_types)


def test_required_tasks_are_defined() -> None:
    lm = load_model(FrameworkDefinition, REPO / "images/lm-eval/framework.yml")
    assert {"mmlu", "mmlu_pro", "gsm8k", "arc_challenge", "hellaswag", "truthfulqa_mc2", "winogrande", "ifeval",
            "bbh", "humaneval", "mbpp"} <= set(lm.task_names)
    vlm = load_model(FrameworkDefinition, REPO / "images/vlmevalkit/framework.yml")
    assert vlm.task_names == ["ai2d_judge", "chartqa", "mathvista-mini", "mmmu_judge", "ocrbench", "ocr_reasoning",
                              "slidevqa"]


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_committed_json_schema_is_current(name: str) -> None:
    committed = (SCHEMA_DIR / name).read_text(encoding="utf-8")
    assert committed == render_schema(SCHEMAS[name]), f"run `make schema` to regenerate {name}"


def framework_data(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "framework": {"name": "h", "pkg_name": "h", "full_name": "H", "description": "d", "url": "http://x"},
        "defaults": {"command": "true"},
        "evaluations": [{"name": "A", "description": "d", "defaults": {"config": {"type": "a"}}}],
    }
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"defaults": {}}, "defaults.command"),
        ({"evaluations": [{"name": "A", "description": "d", "defaults": {}}]}, "no defaults.config.type"),
        ({"evaluations": [{"name": "A", "description": "d", "defaults": {"config": {"type": "a"}}}] * 2},
         "defined twice"),
        ({"evaluations": []}, "at least 1"),
        ({"frameworks": {}}, "Extra inputs"),
    ],
)
def test_invalid_framework_definitions_are_rejected(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        FrameworkDefinition.model_validate(framework_data(**changes))


LAYER_ORDER = {"schema": 0, "runtime": 1, "host": 2}
PACKAGE = REPO / "orchestrator"
MODULES = sorted(PACKAGE.rglob("*.py"))
BACKENDS = sorted(p.name for p in (PACKAGE / "host" / "backends").iterdir() if (p / "__init__.py").is_file())
CLI = "orchestrator.host.cli"
CLI_REFERENCE = "orchestrator.host.cli_reference"


def in_cli(module: str) -> bool:
    """Whether a module is the `evals` command line (its package ``host/cli/``, or the reference rendering its help)."""
    return module in (CLI, CLI_REFERENCE) or module.startswith(f"{CLI}.")


def layer_of(module: str) -> str | None:
    """The layer of a module of the package; None for the face (the package root) and for other packages."""
    parts = module.split(".")
    if parts[0] != "orchestrator" or len(parts) == 1:
        return None
    assert parts[1] in LAYER_ORDER, f"{module} is in no layer: the package root holds only schema, runtime, host"
    return parts[1]


def backend_of(module: str) -> str | None:
    """The backend folder of a host module (``local``, ``slurm``, ``kubernetes``), if it is in one."""
    parts = module.split(".")
    in_backend = parts[:3] == ["orchestrator", "host", "backends"] and len(parts) > 3 and parts[3] in BACKENDS
    return parts[3] if in_backend else None


def imported(path: Path) -> list[str]:
    """Every module ``path`` imports (``from orchestrator import x`` counts as ``orchestrator.x``)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            if node.module == "orchestrator":
                names += [f"orchestrator.{alias.name}" for alias in node.names if alias.name != "__version__"]
    return names


def test_the_package_root_is_only_a_face() -> None:
    """orchestrator/ holds __init__.py (the version) and the three layers; the face imports none of them."""
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == ["__init__.py"]
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(LAYER_ORDER)
    assert not [name for name in imported(PACKAGE / "__init__.py") if name.startswith("orchestrator")]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_import_rule_schema_runtime_host(path: Path) -> None:
    """schema <- runtime <- host: a layer never imports a later one; only the host imports docker, typer, rich
    (and of the host, only the local backend's docker module imports docker, and only the CLI typer and click); a
    backend never imports another; nothing but the CLI imports the CLI (it is the top: it calls api, nothing calls
    it)."""
    module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
    own = layer_of(module)
    if own is None:
        return
    for name in imported(path):
        top = name.split(".")[0]
        if own in ("schema", "runtime"):
            assert top not in ("docker", "typer", "rich"), f"{path} imports {name}"
        if top == "docker":
            assert module == "orchestrator.host.backends.local.docker", f"{path} imports {name}"
        if top in ("typer", "click") or in_cli(name):
            assert in_cli(module), f"{path} imports {name}: only the CLI does"
        target = layer_of(name)
        if target is not None:
            assert LAYER_ORDER[target] <= LAYER_ORDER[own], f"{path} ({own}) imports {name} ({target})"
        mine, theirs = backend_of(module), backend_of(name)
        assert theirs is None or mine is None or mine == theirs, f"{path} (backend {mine}) imports {name} ({theirs})"


DOUBLE_NAMES = ("fake", "double", "stub", "mock", "dummy")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_test_double_ships_in_the_package(path: Path) -> None:
    """Test doubles live in tests/doubles/: no module or class of the package is named like one."""
    parts = [part.lower() for part in path.relative_to(PACKAGE).with_suffix("").parts]
    assert not [part for part in parts if any(word in part for word in DOUBLE_NAMES)], f"{path} looks like a double"
    classes = [node.name for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
               if isinstance(node, ast.ClassDef)]
    assert not [name for name in classes if name.lower().startswith(DOUBLE_NAMES)], f"{path} defines {classes}"

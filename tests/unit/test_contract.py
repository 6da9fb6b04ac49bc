"""The contract itself: shipped YAML validates, JSON Schemas are current, layers import in one direction."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import ValidationError

from orchestrator.schema.export import SCHEMA_DIR, SCHEMAS, render_schema
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


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "orchestrator":
        return None
    if len(parts) > 1 and parts[1] in ("schema", "runtime"):
        return parts[1]
    return "host" if len(parts) > 1 else None


@pytest.mark.parametrize("path", sorted((REPO / "orchestrator").rglob("*.py")), ids=lambda p: p.name)
def test_import_rule_schema_runtime_host(path: Path) -> None:
    """schema <- runtime <- host: a layer never imports a later one; runtime never imports docker."""
    own = layer_of(".".join(path.relative_to(REPO).with_suffix("").parts))
    if own is None:
        return
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
        for name in names:
            if own in ("schema", "runtime"):
                assert name.split(".")[0] not in ("docker", "typer", "rich"), f"{path} imports {name}"
            target = layer_of(name)
            if target is not None:
                assert LAYER_ORDER[target] <= LAYER_ORDER[own], f"{path} ({own}) imports {name} ({target})"

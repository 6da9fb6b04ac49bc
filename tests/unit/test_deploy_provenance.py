"""results.yml records what was served: run_eval reads the host's deployment (EVALS_DEPLOYMENT) into provenance."""

from __future__ import annotations

from pathlib import Path

import yaml

from orchestrator.schema.config import DeploymentLayer
from orchestrator.schema.container import DEPLOYMENT_VAR
from orchestrator.schema.deployment import ServedDeployment, resolve_deployment
from orchestrator.schema.results import ResultsFile
from tests.unit.test_cli import run_eval


def served() -> ServedDeployment:
    deployment = resolve_deployment(DeploymentLayer(type="vllm", checkpoint="/models/llama", gpus=1))
    assert deployment is not None
    return ServedDeployment(deployment=deployment, command=["vllm", "serve", "/checkpoint"],
                            image_digest="sha256:" + "a" * 64)


def test_a_result_records_the_deployment_it_evaluated(tmp_path: Path) -> None:
    result = run_eval(tmp_path / "out", env={DEPLOYMENT_VAR: served().model_dump_json()})
    assert result.returncode == 0, result.stderr
    results = ResultsFile.model_validate(yaml.safe_load((tmp_path / "out" / "results.yml").read_text()))
    assert results.provenance.deployment == served()
    assert results.provenance.deployment.deployment.checkpoint == "/models/llama"


def test_without_a_deployment_there_is_none(tmp_path: Path) -> None:
    assert run_eval(tmp_path / "out").returncode == 0
    assert yaml.safe_load((tmp_path / "out" / "results.yml").read_text())["provenance"]["deployment"] is None


def test_a_malformed_deployment_is_one_line_before_the_harness_runs(tmp_path: Path) -> None:
    result = run_eval(tmp_path / "out", env={DEPLOYMENT_VAR: '{"deployment": 1}'})
    assert result.returncode == 2 and f"{DEPLOYMENT_VAR} is not a deployment record" in result.stderr
    assert not (tmp_path / "out" / "logs" / "harness.log").exists()

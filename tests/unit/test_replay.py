"""Provenance names the image a result came from; `evals run --from results.yml` runs that evaluation again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator import __version__
from orchestrator.host.backends.container import LaunchSpec
from orchestrator.host.backends.local.docker import DockerImages, provenance_environment
from orchestrator.host.plan import resolve_task
from orchestrator.host.records.results import read_results
from orchestrator.runtime.run import dump_results
from orchestrator.schema.container import (
    HOST_VERSION_VAR,
    IMAGE_DIGEST_VAR,
    IMAGE_REPO_DIGEST_VAR,
    IMAGE_VAR,
    RESOLVED_CONFIG_PATH,
    RESULTS_DIR,
)
from orchestrator.schema.resolve import RunRequest
from orchestrator.schema.results import ResultsFile
from tests.doubles.engine import FakeEngine, FakeImage, as_client
from tests.doubles.launcher import FakeLauncher
from tests.doubles.services import fake_services
from tests.unit.evals_app import Evals
from tests.unit.test_host_cli import IMAGES, REPO, RESULTS, URL, labels_for, write_results

IMAGE_ID = "sha256:" + "ab" * 32
REPO_DIGEST = "registry.example/evals/lm-eval@sha256:" + "cd" * 32
FAKE = REPO / "tests" / "fixtures" / "frameworks" / "fake-lm-eval" / "framework.yml"


def recorded_results(tmp_path: Path, *, repo_digest: str | None = None) -> Path:
    """A results.yml as a run of gsm8k in evals/lm-eval:latest (id IMAGE_ID) writes it, with non-default values."""
    request = RunRequest(eval_type="gsm8k", model_id="org/model", model_url=URL, model_type="completions",
                         api_key_name="MY_KEY", overrides="config.params.limit_samples=7,config.params.temperature=0.3,"
                                                          "config.params.extra.args=[--seed, '1']")
    evaluation = resolve_task(IMAGES[0], request).evaluation
    fixture = ResultsFile.model_validate(yaml.safe_load(RESULTS.read_text()))
    provenance = fixture.provenance.model_copy(update={"image": "evals/lm-eval:latest", "image_digest": IMAGE_ID,
                                                       "image_repo_digest": repo_digest})
    document = fixture.model_copy(update={"config": evaluation.config, "target": evaluation.target,
                                          "provenance": provenance})
    path = tmp_path / "first" / "results.yml"
    path.parent.mkdir()
    path.write_text(dump_results(document))
    return path


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    """The lm-eval image, present here only by its id (its tag may since point elsewhere); listing images (to pick
    one by task) fails the test: --from must not."""
    fake = FakeEngine()
    fake.images.local[IMAGE_ID] = FakeImage(IMAGE_ID, labels_for("lm-eval", "0.4.13"))
    monkeypatch.setenv("MY_KEY", "sk-unit-1")
    return fake


@pytest.fixture
def launcher() -> FakeLauncher:
    return FakeLauncher(behaviour=write_results)


@pytest.fixture
def evals(engine: FakeEngine, launcher: FakeLauncher) -> Evals:
    """The CLI over the engine's images (the real catalog over the engine double) and the fake launcher."""
    return Evals(fake_services(catalog=DockerImages(as_client(engine)), launcher=launcher))


def rendered_config(dry_run_output: str) -> dict[str, object]:
    text = dry_run_output.split("Rendered config:", 1)[1].split("\nData step", 1)[0]
    text = text.split("\nRendered command:", 1)[0]
    config: dict[str, object] = yaml.safe_load(text)
    return config


def test_from_runs_the_recorded_config_in_the_image_pinned_by_id(evals: Evals, engine: FakeEngine,
                                                                 launcher: FakeLauncher, tmp_path: Path) -> None:
    source = recorded_results(tmp_path)
    recorded = read_results(source)
    code, out, err = evals("run", "--from", str(source), "--output_dir", str(tmp_path / "again"), "--dry_run")
    assert code == 0, err
    shown = rendered_config(out)
    assert shown["config"] == recorded.config.model_dump(mode="json")
    assert shown["target"] == recorded.target.model_dump(mode="json")
    assert f"image: {IMAGE_ID}" in out

    code, _, err = evals("run", "--from", str(source), "--output_dir", str(tmp_path / "again"))
    assert code == 0, err
    spec = launcher.launched[0]
    assert spec.image == IMAGE_ID and spec.environment[IMAGE_VAR] == "evals/lm-eval:latest"
    assert spec.secret_envs == ["MY_KEY"] and "sk-unit-1" not in repr(spec)
    assert spec.args == ["run_eval", "--resolved_config", RESOLVED_CONFIG_PATH]
    handed = yaml.safe_load((tmp_path / "again" / "run_config.yml").read_text())  # what the container runs
    assert handed["config"] == {**recorded.config.model_dump(mode="json"), "output_dir": RESULTS_DIR}
    assert handed["target"] == recorded.target.model_dump(mode="json")
    assert (tmp_path / "again" / "results.yml").is_file() and engine.images.pulled == []


def test_from_pulls_the_image_by_its_registry_digest_when_it_is_not_here(evals: Evals, engine: FakeEngine,
                                                                         launcher: FakeLauncher,
                                                                         tmp_path: Path) -> None:
    source = recorded_results(tmp_path, repo_digest=REPO_DIGEST)
    engine.images.registry[REPO_DIGEST] = engine.images.local.pop(IMAGE_ID)
    code, _, err = evals("run", "--from", str(source), "--output_dir", str(tmp_path / "again"))
    assert code == 0, err
    assert engine.images.pulled == [REPO_DIGEST] and launcher.launched[0].image == IMAGE_ID


@pytest.mark.parametrize("repo_digest, remedy", [(None, "build evals/lm-eval:latest again"),
                                                 (REPO_DIGEST, f"docker pull {REPO_DIGEST}")])
def test_from_refuses_when_the_image_is_not_available(repo_digest: str | None, remedy: str, *, evals: Evals,
                                                      engine: FakeEngine, launcher: FakeLauncher, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    source = recorded_results(tmp_path, repo_digest=repo_digest)
    engine.images.local.clear()
    assert evals.main(["run", "--from", str(source), "--output_dir", str(tmp_path / "again")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert f"image evals/lm-eval:latest ({IMAGE_ID}) is not available here" in err and remedy in err
    assert launcher.launched == [] and not (tmp_path / "again").exists()


@pytest.mark.parametrize("flag", [["--eval_type", "mmlu"], ["--model_id", "other"], ["--overrides", "a.b=1"],
                                  ["--image", "evals/lm-eval:0.1"], ["--offline"]])
def test_from_refuses_flags_that_would_change_the_evaluation(flag: list[str], evals: Evals,
                                                             launcher: FakeLauncher, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    source = recorded_results(tmp_path)
    assert evals.main(["run", "--from", str(source), *flag]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"{flag[0]} cannot change it" in err
    assert launcher.launched == []


def test_from_an_old_results_file_says_what_it_lacks(evals: Evals, launcher: FakeLauncher,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    old = read_results(RESULTS)  # written before the image's id was recorded: it still loads
    assert old.provenance.image is None and old.provenance.image_digest is None and old.provenance.host_version is None
    assert evals.main(["run", "--from", str(RESULTS)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "records no provenance.image or provenance.image_digest" in err and launcher.launched == []


def test_the_launcher_tells_the_container_its_image_id_and_the_host_version() -> None:
    plain = LaunchSpec(image="evals/lm-eval:latest", args=[], name="n")
    assert provenance_environment(plain, image_id=IMAGE_ID, repo_digests=[]) == {
        IMAGE_VAR: "evals/lm-eval:latest", IMAGE_DIGEST_VAR: IMAGE_ID, HOST_VERSION_VAR: __version__}
    pinned = LaunchSpec(image=IMAGE_ID, args=[], name="n", environment={IMAGE_VAR: "evals/lm-eval:latest"})
    environment = provenance_environment(pinned, image_id=IMAGE_ID, repo_digests=[REPO_DIGEST])
    assert environment[IMAGE_VAR] == "evals/lm-eval:latest" and environment[IMAGE_REPO_DIGEST_VAR] == REPO_DIGEST


def test_the_runtime_records_what_the_launcher_told_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    told = {IMAGE_VAR: "evals/lm-eval:latest", IMAGE_DIGEST_VAR: IMAGE_ID, IMAGE_REPO_DIGEST_VAR: REPO_DIGEST,
            HOST_VERSION_VAR: "9.9.9"}
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator.runtime", "--framework", str(FAKE), "run_eval", "--eval_type", "gsm8k",
         "--model_id", "m", "--model_url", URL.replace("completions", "chat/completions"), "--model_type", "chat",
         "--output_dir", str(out)], capture_output=True, text=True, cwd=REPO, env={**os.environ, **told}, timeout=60,
        check=False)
    assert result.returncode == 0, result.stderr
    provenance = read_results(out / "results.yml").provenance
    assert (provenance.image, provenance.image_digest, provenance.image_repo_digest, provenance.host_version) == (
        "evals/lm-eval:latest", IMAGE_ID, REPO_DIGEST, "9.9.9")


@pytest.mark.parametrize("runtime", ["docker", "enroot", "apptainer"])
def test_from_on_slurm_pins_the_id_with_docker_and_refuses_runtimes_that_import_by_name(
        runtime: str, evals: Evals, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    source = recorded_results(tmp_path)
    code = evals.main(["run", "--from", str(source), "--executor", "slurm", "--container_runtime", runtime,
                     "--output_root", str(tmp_path / "shared"), "--dry_run"])
    out, err = capsys.readouterr()
    if runtime == "docker":
        assert code == 0, err
        assert "docker run" in out and f" {IMAGE_ID} run_eval" in out
    else:
        assert code == 2 and len(err.strip().splitlines()) == 1 and "only the docker container runtime" in err

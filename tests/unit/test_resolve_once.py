"""Resolve once: the host resolves each task once and the container runs that resolved run as it is.

Through the CLI with a fake launcher and a fake Slurm; the container side runs the real runtime
(``python -m orchestrator.runtime``) on the file the host wrote.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from orchestrator import __version__
from orchestrator.host.backends.container import LaunchSpec, Output
from orchestrator.host.backends.local.executor import LocalExecutor
from orchestrator.host.backends.slurm.commands import SlurmCli
from orchestrator.host.backends.slurm.executor import SlurmExecutor
from orchestrator.host.records import store
from orchestrator.runtime import run as runtime_run
from orchestrator.runtime.run import load_framework, plan_run, resolved_config_text
from orchestrator.schema.config import Evaluation
from orchestrator.schema.container import (
    HOST_CONTRACT_VAR,
    HOST_VERSION_VAR,
    IMAGE_VAR,
    RESOLVED_CONFIG_PATH,
    RESULTS_DIR,
)
from orchestrator.schema.contract import fingerprint
from orchestrator.schema.framework import FrameworkDefinition
from orchestrator.schema.resolve import RunRequest, resolve_run
from tests.doubles.launcher import FakeLauncher
from tests.doubles.services import fake_services
from tests.doubles.slurm import FakeSlurm
from tests.unit.evals_app import Evals
from tests.unit.test_host_cli import IMAGES, REPO, RESULTS, URL

RUN = ["run", "--model_id", "m", "--model_url", URL, "--model_type", "completions", "--api_key_name", "MY_KEY",
       "--overrides", "config.params.limit_samples=3,config.params.extra.note='a, b'"]
LM_EVAL = REPO / "images" / "lm-eval" / "framework.yml"
FAKE = REPO / "tests" / "fixtures" / "frameworks" / "fake-lm-eval" / "framework.yml"
JUDGE = ('config.params.extra.judge={"model": "j", "url": "http://localhost:9/v1/chat/completions", '
         '"api_key": "JK"},config.params.extra.x=[1, null, 2.5e-07, "yes", "", {a: ~}],'
         'config.params.extra.user_simulator={"model_id": "u", "url": "http://localhost:7/v1/chat/completions"}')


def rendered_config_text(dry_run_output: str) -> str:
    """The text a dry run shows under "Rendered config:" (of its first task)."""
    text = dry_run_output.split("Rendered config:\n\n", 1)[1]
    end = min(i for i in (text.find("\nData step ("), text.find("\nRendered command:")) if i >= 0)
    return text[:end]


class Seen:
    """What the fake containers got: their specs and the bytes of the resolved config each was handed."""

    def __init__(self) -> None:
        self.configs: list[bytes] = []

    def __call__(self, spec: LaunchSpec, output: Output) -> None:
        config = next(m for m in spec.mounts if m.target == RESOLVED_CONFIG_PATH)
        assert config.read_only
        self.configs.append(config.source.read_bytes())
        out = next(m.source for m in spec.mounts if m.target == RESULTS_DIR)
        (out / "results.yml").write_text(RESULTS.read_text())


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def launcher(seen: Seen) -> FakeLauncher:
    return FakeLauncher(behaviour=seen)


@pytest.fixture
def resolutions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every resolution of a task on the host (a spy around the resolve function plan_run calls)."""
    calls: list[str] = []

    def spy(framework: FrameworkDefinition, request: RunRequest) -> Evaluation:
        calls.append(request.eval_type or "?")
        return resolve_run(framework, request)

    monkeypatch.setattr(runtime_run, "resolve_run", spy)
    return calls


@pytest.fixture(autouse=True)
def fakes(monkeypatch: pytest.MonkeyPatch) -> FakeSlurm:
    monkeypatch.setenv("MY_KEY", "sk-unit")
    return FakeSlurm()


@pytest.fixture
def evals(launcher: FakeLauncher, fakes: FakeSlurm) -> Evals:
    """`evals` over doubles: the images, ``launcher``, the fake Slurm."""
    slurm = fakes

    def executor(kind: str) -> LocalExecutor | SlurmExecutor:
        if kind == "slurm":
            return SlurmExecutor(SlurmCli(slurm), lambda: pytest.fail("nothing to remove"))
        return LocalExecutor(launcher, pytest.fail, cancel_wait=0.5)  # type: ignore[arg-type]

    return Evals(fake_services(images=IMAGES, launcher=launcher, slurm=slurm, executor_for=executor))


def runtime(*args: str, framework: Path = LM_EVAL, env: dict[str, str] | None = None,
            drop: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """The container's side: ``python -m orchestrator.runtime --framework F ARGS``."""
    environment = {k: v for k, v in os.environ.items() if k not in drop} | (env or {})
    return subprocess.run([sys.executable, "-m", "orchestrator.runtime", "--framework", str(framework), *args],
                          capture_output=True, text=True, cwd=REPO, env=environment, timeout=60, check=False)


@pytest.mark.parametrize("extra", [[], ["--dry_run"], ["--executor", "slurm", "--output_root", "{tmp}/shared"],
                                   ["--executor", "slurm", "--output_root", "{tmp}/shared", "--dry_run"],
                                   ["--executor", "kubernetes", "--dry_run", "--manifests", "{tmp}/k8s"]])
def test_each_task_is_resolved_once_per_run(evals: Evals, extra: list[str], resolutions: list[str],
                                            tmp_path: Path) -> None:
    flags = [arg.format(tmp=tmp_path) for arg in extra]
    code, _, err = evals(*RUN, "--eval_type", "gsm8k", "--eval_type", "humaneval", "--output_dir",
                         str(tmp_path / "out"), *flags)
    assert code == 0, err
    assert sorted(resolutions) == ["gsm8k", "humaneval"]


def test_a_resubmit_resolves_nothing_and_runs_the_same_file(evals: Evals, launcher: FakeLauncher, seen: Seen,
                                                             resolutions: list[str], tmp_path: Path) -> None:
    launcher.exit_code = 3
    assert evals.main([*RUN, "--eval_type", "gsm8k", "--output_dir", str(tmp_path / "out")]) == 3
    (run_id,) = store.run_ids()
    written = tmp_path / "out" / "run_config.yml"
    written.write_text("edited: since\n")  # removed or edited since: the record's copy is what runs again
    launcher.exit_code = 0
    code, _, err = evals("resubmit", run_id)
    assert code == 0, err
    assert resolutions == ["gsm8k"] and len(seen.configs) == 2 and seen.configs[0] == seen.configs[1]
    assert launcher.launched[0].args == launcher.launched[1].args == ["run_eval", "--resolved_config",
                                                                       RESOLVED_CONFIG_PATH]
    assert written.read_bytes() == seen.configs[0]


def test_a_slurm_resubmit_writes_the_same_file_before_submitting(evals: Evals, fakes: FakeSlurm,
                                                                 tmp_path: Path) -> None:
    code, _, err = evals(*RUN, "--eval_type", "gsm8k", "--executor", "slurm", "--output_root", str(tmp_path / "s"))
    assert code == 0, err
    (run_id,) = store.run_ids()
    record = store.load(run_id)
    written = Path(record.tasks[0].output_dir) / "run_config.yml"
    assert written.read_text() == record.tasks[0].resolved_config
    written.unlink()
    assert record.tasks[0].job_id is not None
    fakes.set_state(record.tasks[0].job_id, "FAILED", "1:0")
    code, _, err = evals("resubmit", run_id)
    assert code == 0, err
    assert written.read_text() == record.tasks[0].resolved_config


def test_the_container_gets_byte_for_byte_what_the_dry_run_shows(evals: Evals, seen: Seen, launcher: FakeLauncher,
                                                                  tmp_path: Path) -> None:
    code, shown, err = evals(*RUN, "--eval_type", "gsm8k", "--output_dir", str(tmp_path / "dry"), "--dry_run")
    assert code == 0, err
    assert not (tmp_path / "dry").exists()  # a dry run writes nothing
    code, _, err = evals(*RUN, "--eval_type", "gsm8k", "--output_dir", str(tmp_path / "out"))
    assert code == 0, err
    assert seen.configs == [rendered_config_text(shown).encode()]
    spec = launcher.launched[0]
    assert spec.args == ["run_eval", "--resolved_config", RESOLVED_CONFIG_PATH]
    assert {k: spec.environment[k] for k in (IMAGE_VAR, HOST_VERSION_VAR, HOST_CONTRACT_VAR)} == {
        IMAGE_VAR: "evals/lm-eval:latest", HOST_VERSION_VAR: __version__, HOST_CONTRACT_VAR: fingerprint()}

    # the container's runtime shows (and so runs) exactly what the host showed: config, data step, command
    handed = tmp_path / "out" / "run_config.yml"
    result = runtime("run_eval", "--resolved_config", str(handed), "--dry_run", env=spec.environment)
    assert result.returncode == 0, result.stderr
    assert result.stdout == shown.split("\nContainer:\n", 1)[0]


def test_the_runtime_runs_the_resolved_file_as_it_is_and_keeps_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    framework = load_framework(FAKE)
    plan = plan_run(framework, RunRequest(eval_type="gsm8k", model_id="m", model_url=URL, model_type="chat",
                                          output_dir=str(out), overrides="config.params.limit_samples=4"))
    out.mkdir()
    handed = out / "run_config.yml"
    handed.write_text(resolved_config_text(plan.evaluation))
    before = handed.stat()
    result = runtime("run_eval", "--resolved_config", str(handed), framework=FAKE,
                     env={HOST_VERSION_VAR: __version__, HOST_CONTRACT_VAR: fingerprint()})
    assert result.returncode == 0, result.stderr
    results = yaml.safe_load((out / "results.yml").read_text())
    assert results["provenance"]["command"] == plan.command and "--limit 4" in plan.command
    assert handed.stat().st_ino == before.st_ino and handed.stat().st_mtime_ns == before.st_mtime_ns


@pytest.mark.parametrize("flag", [["--eval_type", "gsm8k"], ["--model_id", "x"], ["--model_url", URL],
                                  ["--model_type", "chat"], ["--api_key_name", "K"], ["--output_dir", "o"],
                                  ["--run_config", "r.yml"], ["--overrides", "a.b=1"], ["--offline"]])
def test_resolved_config_refuses_the_flags_that_resolve(flag: list[str], tmp_path: Path) -> None:
    result = runtime("run_eval", "--resolved_config", str(tmp_path / "r.yml"), *flag)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert f"{flag[0]} cannot change it" in result.stderr


def resolved_file(tmp_path: Path, edit: Callable[[str], str] = lambda text: text) -> Path:
    framework = load_framework(LM_EVAL)
    plan = plan_run(framework, RunRequest(eval_type="gsm8k", model_id="m", model_url=URL, model_type="completions",
                                          output_dir=RESULTS_DIR))
    path = tmp_path / "run_config.yml"
    path.write_text(edit(resolved_config_text(plan.evaluation)))
    return path


@pytest.mark.parametrize("told", [{HOST_VERSION_VAR: "9.9.9"}, {HOST_CONTRACT_VAR: "ab" * 32}])
def test_a_runtime_of_another_version_names_the_image_to_rebuild(told: dict[str, str], tmp_path: Path) -> None:
    path = resolved_file(tmp_path)
    env = {HOST_VERSION_VAR: __version__, HOST_CONTRACT_VAR: fingerprint(), IMAGE_VAR: "me/evals/lm-eval:latest"}
    result = runtime("run_eval", "--resolved_config", str(path), "--dry_run", env=env | told)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"image me/evals/lm-eval:latest has evals {__version__} (contract {fingerprint()[:12]})" in result.stderr
    assert "`make images` or `bash scripts/build-image.sh lm-eval`" in result.stderr
    outside = runtime("run_eval", "--resolved_config", str(path), "--dry_run",
                      env={k: v for k, v in (env | told).items() if k != IMAGE_VAR}, drop=(IMAGE_VAR,))
    assert outside.returncode == 2 and "this runtime has evals" in outside.stderr and "pip install" in outside.stderr


def test_a_file_that_does_not_validate_says_which_image_to_rebuild(tmp_path: Path) -> None:
    path = resolved_file(tmp_path, lambda text: text.replace("  params:\n", "  params:\n    from_a_newer_host: 1\n"))
    result = runtime("run_eval", "--resolved_config", str(path), "--dry_run",
                     env={IMAGE_VAR: "me/evals/lm-eval:latest"})
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "from_a_newer_host" in result.stderr and "rebuild image me/evals/lm-eval:latest" in result.stderr


def test_a_file_resolved_with_another_framework_is_refused(tmp_path: Path) -> None:
    path = resolved_file(tmp_path, lambda text: text.replace("set p = config.params", "set p = config.params ", 1))
    result = runtime("run_eval", "--resolved_config", str(path), "--dry_run")
    assert result.returncode == 2 and "was resolved with another framework.yml" in result.stderr
    other = runtime("run_eval", "--resolved_config", str(resolved_file(tmp_path)), "--dry_run",
                    framework=REPO / "images" / "vlmevalkit" / "framework.yml")
    assert other.returncode == 2 and "is a run of lm-eval; this is the runtime of vlmevalkit" in other.stderr


@pytest.mark.parametrize("framework", sorted(REPO.glob("images/*/framework.yml")), ids=lambda p: p.parent.name)
def test_every_task_reads_back_as_the_same_run_and_text(framework: Path) -> None:
    """The runtime keeps the host's file only if reading and writing it gives the same bytes: for every task."""
    loaded = load_framework(framework)
    for task in loaded.definition.evaluations:
        model_type = (task.endpoint_types or ["chat"])[0]
        plan = plan_run(loaded, RunRequest(eval_type=task.type, model_id="org/m", model_url=URL, model_type=model_type,
                                           output_dir=RESULTS_DIR, api_key_name="K",
                                           overrides=f"config.params.temperature=0.1,{JUDGE}"))
        text = resolved_config_text(plan.evaluation)
        again = Evaluation.model_validate(yaml.safe_load(text))
        assert again == plan.evaluation and resolved_config_text(again) == text, task.type


def test_the_image_is_chosen_by_the_task_the_overrides_name_as_resolving_reads_them(evals: Evals,
                                                                                    tmp_path: Path) -> None:
    overrides = "config.params.extra.note='x,config.type=nothing',config.type=gsm8k"
    code, out, err = evals("run", "--model_id", "m", "--model_url", URL, "--model_type", "completions",
                           "--overrides", overrides, "--output_dir", str(tmp_path / "o"), "--dry_run")
    assert code == 0, err
    assert yaml.safe_load(rendered_config_text(out))["config"]["type"] == "gsm8k"

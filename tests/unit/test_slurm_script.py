"""The Slurm batch script: golden files per container runtime, and the scripts run against fake runtimes.

Regenerate the golden files after an intended change with ``EVALS_UPDATE_GOLDEN=1 pytest tests/unit``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator.host.backends.slurm.script import render_batch_script, runtime_image
from orchestrator.schema.slurm import SlurmConfig
from tests.unit.records import CONTRACT, RUN_DIR, RUN_ID, TRICKY, task, tasks

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "slurm"
CONFIGS = {
    "docker": SlurmConfig(partition="batch", account="evals", time="1:00:00", sbatch_extra=["--qos=high"]),
    "enroot": SlurmConfig(container_runtime="enroot", partition="gpu", gres="gpu:1", time="30",
                          images={"lm-eval": "/shared/images/lm-eval.sqsh"}),
    "apptainer": SlurmConfig(container_runtime="apptainer", gpus=1, mem="16G", cpus_per_task=4),
}
FAKE = """#!/bin/bash
# A fake container runtime: records its arguments (one per line), its environment and its stdin.
log="$FAKE_LOG/$(basename "$0").$1"
printf '%s\\n' "$@" > "$log.argv"
env > "$log.env"
if [ "$1" = image ]; then  # docker image inspect --format ...: the id, or the registry digests one a line
  case "$*" in
    *RepoDigests*) printf '%s\\n' ${FAKE_REPO_DIGESTS:-} ;;
    *) [ -n "${FAKE_IMAGE_ID:-}" ] || exit 1; echo "$FAKE_IMAGE_ID" ;;
  esac
  exit 0
fi
if [ "$1" = run ] || [ "$1" = exec ] || [ "$(basename "$0")" = srun ]; then cat > "$log.stdin"; fi
if [ -n "${FAKE_SLEEP:-}" ] && [ "$1" != rm ]; then sleep "$FAKE_SLEEP"; fi
exit "${FAKE_EXIT:-0}"
"""


@pytest.mark.parametrize("runtime", sorted(CONFIGS))
def test_rendered_script_matches_golden_file(runtime: str) -> None:
    script = render_batch_script(run_id=RUN_ID, run_dir=RUN_DIR, tasks=tasks(), config=CONFIGS[runtime])
    golden = GOLDEN / f"{runtime}.sh"
    if os.environ.get("EVALS_UPDATE_GOLDEN"):
        golden.write_text(script)
    assert script == golden.read_text(), f"{golden} differs; regenerate with EVALS_UPDATE_GOLDEN=1 if intended"
    assert subprocess.run(["bash", "-n"], input=script, text=True, check=False).returncode == 0


@pytest.mark.parametrize("runtime", sorted(CONFIGS))
def test_script_holds_no_secret_and_exports_the_key_by_name(runtime: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "sk-never-in-a-script")
    script = render_batch_script(run_id=RUN_ID, run_dir=RUN_DIR, tasks=tasks(), config=CONFIGS[runtime])
    assert "sk-never-in-a-script" not in script
    assert "#SBATCH --export=PATH,HOME,USER,LANG,TZ,DOCKER_HOST,MY_KEY\n" in script
    assert "#SBATCH --array=0-1\n" in script and f"#SBATCH --output={RUN_DIR}/logs/task-%a.log\n" in script


def test_a_single_task_is_a_plain_job() -> None:
    script = render_batch_script(run_id=RUN_ID, run_dir=RUN_DIR, tasks=[task(0, "gsm8k_sample", key=None)],
                                 config=SlurmConfig())
    assert "--array" not in script and f"#SBATCH --output={RUN_DIR}/logs/task-0.log\n" in script
    assert "require" not in script.split("case", 1)[1] and "EVALS_SECRET_STDIN" not in script


def test_runtime_image_defaults_and_overrides() -> None:
    assert runtime_image("evals/lm-eval:latest", "lm-eval", SlurmConfig()) == "evals/lm-eval:latest"
    assert runtime_image("evals/lm-eval:latest", "lm-eval", SlurmConfig(container_runtime="enroot")) == \
        "dockerd://evals/lm-eval:latest"
    assert runtime_image("evals/lm-eval:latest", "lm-eval", SlurmConfig(container_runtime="apptainer")) == \
        "docker-daemon://evals/lm-eval:latest"
    assert runtime_image("x", "lm-eval", SlurmConfig(images={"lm-eval": "/s/lm.sif"})) == "/s/lm.sif"


def run_script(tmp_path: Path, runtime: str, *, env: dict[str, str], wait: bool = True, element: int = 1
               ) -> tuple[subprocess.Popen[str], Path, Path]:
    """Render the script for tasks under tmp_path and start it as Slurm would start array element ``element`` (0:
    the resolved config; 1: a task recorded before the host resolved for the container, with the tricky override)."""
    bin_dir, log_dir, run_dir = tmp_path / "bin", tmp_path / "calls", tmp_path / "run"
    bin_dir.mkdir()
    log_dir.mkdir()
    for name in ("docker", "srun", "apptainer"):
        (bin_dir / name).write_text(FAKE)
        (bin_dir / name).chmod(0o755)
    records = [task(0, "gsm8k_sample", output_root=str(run_dir)),
               task(1, "arc_challenge_sample", legacy_overrides=TRICKY, output_root=str(run_dir))]
    script = tmp_path / "job.sh"
    script.write_text(render_batch_script(run_id=RUN_ID, run_dir=str(run_dir), tasks=records,
                                          config=CONFIGS[runtime]))
    full_env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "SLURM_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": str(element),
                "FAKE_LOG": str(log_dir), **env}
    process = subprocess.Popen(["bash", str(script)], env=full_env, text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
    if wait:
        process.wait(timeout=30)
    return process, log_dir, run_dir


def test_docker_job_passes_args_verbatim_key_on_stdin_and_records_the_exit_code(tmp_path: Path) -> None:
    process, calls, run_dir = run_script(tmp_path, "docker", env={"MY_KEY": "sk-job-123", "FAKE_EXIT": "3"})
    assert process.returncode == 3
    argv = (calls / "docker.run.argv").read_text().splitlines()
    assert argv[:5] == ["run", "--rm", "--init", "-i", "--name"]
    assert argv[5] == f"evals-{RUN_ID}-1-4242"
    assert argv[6:8] == ["--label", "evals.slurm.job=4242"]
    assert argv[argv.index("-u") + 1] == f"{os.getuid()}:{os.getgid()}"
    assert argv[argv.index("-e") + 1] == "EVALS_SECRET_STDIN=MY_KEY"
    assert "--network" in argv and f"{run_dir}/lm-eval-arc_challenge_sample:/workspace/results" in argv
    assert argv[-1] == TRICKY and argv[argv.index("evals/lm-eval:latest") + 1] == "run_eval"
    assert (calls / "docker.run.stdin").read_text() == "sk-job-123\n"
    assert "sk-job-123" not in (calls / "docker.run.argv").read_text()
    assert (run_dir / "exit" / "task-1.code").read_text() == "3\n"
    assert not (tmp_path / "pwned").exists()


def test_enroot_job_hands_the_key_on_stdin_only(tmp_path: Path) -> None:
    process, calls, _ = run_script(tmp_path, "enroot", env={"MY_KEY": "sk-job-456"})
    assert process.returncode == 0
    argv = (calls / "srun.--ntasks=1.argv").read_text().splitlines()
    assert "--container-image=/shared/images/lm-eval.sqsh" in argv and "--no-container-mount-home" in argv
    assert argv[argv.index("core_evals_lm_eval") + 1] == "run_eval" and argv[-1] == TRICKY
    environment = (calls / "srun.--ntasks=1.env").read_text().splitlines()
    assert "EVALS_SECRET_STDIN=MY_KEY" in environment and not any(e.startswith("MY_KEY=") for e in environment)
    assert (calls / "srun.--ntasks=1.stdin").read_text() == "sk-job-456\n"


def test_apptainer_job_uses_a_clean_environment(tmp_path: Path) -> None:
    process, calls, run_dir = run_script(tmp_path, "apptainer", env={"MY_KEY": "sk-job-789"})
    assert process.returncode == 0
    argv = (calls / "apptainer.exec.argv").read_text().splitlines()
    assert argv[:2] == ["exec", "--cleanenv"] and "--nv" in argv
    assert argv[argv.index("--env") + 1] == "EVALS_SECRET_STDIN=MY_KEY"
    assert argv[argv.index("--bind") + 1] == (f"{run_dir}/lm-eval-arc_challenge_sample:/workspace/results,"
                                              "/shared/data:/data:ro")
    assert "docker-daemon://evals/lm-eval:latest" in argv and argv[-1] == TRICKY
    assert (calls / "apptainer.exec.stdin").read_text() == "sk-job-789\n"


def test_a_job_without_the_key_stops_with_a_clear_message(tmp_path: Path) -> None:
    process, calls, _ = run_script(tmp_path, "docker", env={})
    assert process.returncode == 2
    assert process.stdout is not None and "MY_KEY is not set in the job's environment" in process.stdout.read()
    assert not (calls / "docker.run.argv").exists()


def test_a_stopped_docker_job_removes_its_container(tmp_path: Path) -> None:
    process, calls, run_dir = run_script(tmp_path, "docker", env={"MY_KEY": "k", "FAKE_SLEEP": "20"}, wait=False)
    try:
        deadline = time.monotonic() + 10
        while not (calls / "docker.run.argv").exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)  # what scancel and a time limit send first
        assert process.wait(timeout=10) == 143
    finally:
        os.killpg(process.pid, signal.SIGKILL)
    assert (calls / "docker.rm.argv").read_text().splitlines() == ["rm", "-f", f"evals-{RUN_ID}-1-4242"]
    assert not (run_dir / "exit" / "task-1.code").exists()


IMAGE_ID = "sha256:" + "fe" * 32


@pytest.mark.parametrize("runtime", sorted(CONFIGS))
def test_the_container_gets_the_resolved_config_and_names_its_image(runtime: str, tmp_path: Path) -> None:
    env = {"MY_KEY": "k", "FAKE_IMAGE_ID": IMAGE_ID, "FAKE_REPO_DIGESTS": "r.example/b@sha256:2 r.example/a@sha256:1"}
    process, calls, run_dir = run_script(tmp_path, runtime, env=env, element=0)
    assert process.returncode == 0
    step = {"docker": "docker.run", "enroot": "srun.--ntasks=1", "apptainer": "apptainer.exec"}[runtime]
    argv = (calls / f"{step}.argv").read_text().splitlines()
    assert argv[-2:] == ["--resolved_config", "/workspace/resolved_config.yml"] and argv[-3] == "run_eval"
    config = f"{run_dir}/lm-eval-gsm8k_sample/run_config.yml:/workspace/resolved_config.yml:ro"
    assert any(config in arg for arg in argv)
    if runtime == "enroot":  # the image is a .sqsh file the config names: its name, no engine to ask for its id
        environment = (calls / f"{step}.env").read_text().splitlines()
        assert "EVALS_IMAGE=/shared/images/lm-eval.sqsh" in environment and "EVALS_HOST_VERSION=0.1.0" in environment
        assert not any(line.startswith("EVALS_IMAGE_DIGEST=") for line in environment)
        assert not (calls / "docker.image.argv").exists()
        return
    flag = "-e" if runtime == "docker" else "--env"
    assert [argv[i + 1] for i, arg in enumerate(argv) if arg == flag][1:] == [
        "EVALS_IMAGE=evals/lm-eval:latest", "EVALS_HOST_VERSION=0.1.0", f"EVALS_HOST_CONTRACT={CONTRACT}"]
    assert f"--env=EVALS_IMAGE_DIGEST={IMAGE_ID}" in argv
    assert "--env=EVALS_IMAGE_REPO_DIGEST=r.example/a@sha256:1" in argv  # the first in order, as locally
    assert (calls / "docker.image.argv").read_text().splitlines()[-1] == "evals/lm-eval:latest"


def test_an_image_the_node_does_not_hold_gets_no_id(tmp_path: Path) -> None:
    process, calls, _ = run_script(tmp_path, "docker", env={"MY_KEY": "k"}, element=0)
    assert process.returncode == 0
    assert not any(arg.startswith("--env=EVALS_IMAGE_") for arg in (calls / "docker.run.argv").read_text().split())

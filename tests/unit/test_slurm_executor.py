"""The Slurm executor and the Slurm CLI boundary, with a fake sbatch/scontrol/scancel."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from orchestrator.host.backends.slurm.commands import (
    SchedulerError,
    SchedulerUnavailableError,
    SlurmCli,
    parse_job_line,
)
from orchestrator.host.backends.slurm.executor import SlurmExecutor
from orchestrator.host.records import store
from orchestrator.schema.errors import InputError
from orchestrator.schema.record import RunRecord
from orchestrator.schema.slurm import SlurmConfig
from tests.doubles.slurm import FakeSlurm
from tests.unit.records import run_record, slurm_record, task

RESULTS = Path(__file__).resolve().parents[1] / "fixtures" / "results" / "lm_eval_results.yml"


class FakeContainers:
    def __init__(self) -> None:
        self.removed: list[str] = []

    def stop(self, label: str) -> list[str]:
        return []

    def remove(self, label: str) -> list[str]:
        self.removed.append(label)
        return ["c1"]


@pytest.fixture
def fake() -> FakeSlurm:
    return FakeSlurm()


@pytest.fixture
def containers() -> FakeContainers:
    return FakeContainers()


@pytest.fixture
def executor(fake: FakeSlurm, containers: FakeContainers) -> SlurmExecutor:
    return SlurmExecutor(SlurmCli(fake), lambda: containers)


def new_run(tmp_path: Path, count: int = 2, runtime: str = "docker") -> RunRecord:
    run_dir = tmp_path / "shared"
    tasks = [task(i, name, output_root=str(run_dir)) for i, name in enumerate(["gsm8k_sample", "arc_sample"][:count])]
    record = run_record(tasks, slurm=slurm_record(SlurmConfig.model_validate({"container_runtime": runtime}),
                                                  script=str(tmp_path / "state" / "job.sh"), run_dir=str(run_dir),
                                                  count=count))
    store.record_dir(record.id).mkdir(parents=True)
    record.slurm.script = str(store.record_dir(record.id) / "job.sh")  # type: ignore[union-attr]
    return record


def output(chunk: bytes) -> None:
    pass


def test_start_renders_the_script_and_submits_an_array(executor: SlurmExecutor, fake: FakeSlurm,
                                                       tmp_path: Path) -> None:
    record = executor.start(new_run(tmp_path), output=output)
    assert fake.calls[-1] == ["sbatch", "--parsable", record.slurm.script]  # type: ignore[union-attr]
    assert [t.job_id for t in record.tasks] == ["101_0", "101_1"]
    assert all(t.state == "pending" and t.attempts == 1 for t in record.tasks)
    assert Path(record.slurm.script).read_text().startswith("#!/bin/bash")  # type: ignore[union-attr]
    assert store.load(record.id).tasks[1].job_id == "101_1"
    assert (tmp_path / "shared" / "logs").is_dir()
    for submitted in record.tasks:  # each task's output dir holds its resolved run before its job is submitted
        assert (Path(submitted.output_dir) / "run_config.yml").read_text() == submitted.resolved_config


def test_refresh_maps_scheduler_states_and_validates_results(executor: SlurmExecutor, fake: FakeSlurm,
                                                             tmp_path: Path) -> None:
    record = executor.start(new_run(tmp_path), output=output)
    fake.set_state("101_0", "RUNNING")
    fake.set_state("101_1", "PENDING", reason="Resources")
    record = executor.refresh(record)
    assert [t.state for t in record.tasks] == ["running", "pending"] and record.tasks[1].reason == "Resources"
    out = Path(record.tasks[0].output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.yml").write_text(RESULTS.read_text())
    fake.set_state("101_0", "COMPLETED")
    fake.set_state("101_1", "TIMEOUT", exit_code="0:15")
    record = executor.refresh(record)
    assert (record.tasks[0].state, record.tasks[0].exit_code) == ("succeeded", 0)
    assert record.tasks[1].state == "timeout" and "time limit" in (record.tasks[1].reason or "")
    assert store.load(record.id).done


def test_completed_without_results_is_a_failure(executor: SlurmExecutor, fake: FakeSlurm, tmp_path: Path) -> None:
    record = executor.start(new_run(tmp_path, count=1), output=output)
    assert record.tasks[0].job_id == "101"
    fake.set_state("101", "COMPLETED")
    record = executor.refresh(record)
    assert record.tasks[0].state == "failed" and "wrote no" in (record.tasks[0].reason or "")


def test_forgotten_job_falls_back_to_the_exit_file(executor: SlurmExecutor, fake: FakeSlurm, tmp_path: Path) -> None:
    record = executor.start(new_run(tmp_path), output=output)
    (tmp_path / "shared" / "exit").mkdir()
    (tmp_path / "shared" / "exit" / "task-0.code").write_text("4\n")
    record = executor.refresh(record)  # scontrol knows neither job any more
    assert (record.tasks[0].state, record.tasks[0].exit_code) == ("failed", 4)
    assert record.tasks[1].state == "interrupted" and "no exit code" in (record.tasks[1].reason or "")


def test_cancel_scancels_unfinished_jobs_and_removes_containers(executor: SlurmExecutor, fake: FakeSlurm,
                                                                 containers: FakeContainers, tmp_path: Path) -> None:
    record = executor.start(new_run(tmp_path), output=output)
    fake.set_state("101_0", "RUNNING")
    fake.set_state("101_1", "FAILED", exit_code="1:0")
    record = executor.cancel(record)
    assert ["scancel", "101_0"] in fake.calls
    assert [t.state for t in record.tasks] == ["cancelled", "failed"]
    assert containers.removed == [f"evals.run.id={record.id}"]


def test_cancel_leaves_containers_alone_for_other_runtimes(executor: SlurmExecutor, fake: FakeSlurm,
                                                           containers: FakeContainers, tmp_path: Path) -> None:
    record = executor.start(new_run(tmp_path, runtime="enroot"), output=output)
    executor.cancel(record)
    assert containers.removed == []


def test_resume_resubmits_only_unfinished_tasks_with_a_new_time_limit(executor: SlurmExecutor, fake: FakeSlurm,
                                                                      tmp_path: Path) -> None:
    record = executor.start(new_run(tmp_path), output=output)
    out = Path(record.tasks[0].output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.yml").write_text(RESULTS.read_text())
    fake.set_state("101_0", "COMPLETED")
    fake.set_state("101_1", "TIMEOUT")
    record.slurm.config = record.slurm.config.model_copy(update={"time": "90"})  # type: ignore[union-attr]
    record = executor.resume(record, output=output)
    assert fake.calls[-1] == ["sbatch", "--parsable", "--array=1", record.slurm.script]  # type: ignore[union-attr]
    assert "#SBATCH --time=90" in Path(record.slurm.script).read_text()  # type: ignore[union-attr]
    assert record.tasks[0].job_id == "101_0" and record.tasks[1].job_id == "102_1"
    assert record.tasks[1].state == "pending" and record.tasks[1].attempts == 2
    assert len(record.slurm.submissions) == 2  # type: ignore[union-attr]


def test_resume_refuses_while_tasks_run_or_when_all_succeeded(executor: SlurmExecutor, fake: FakeSlurm,
                                                               tmp_path: Path) -> None:
    record = executor.start(new_run(tmp_path, count=1), output=output)
    fake.set_state("101", "RUNNING")
    with pytest.raises(InputError, match="still has unfinished tasks"):
        executor.resume(record, output=output)
    out = Path(record.tasks[0].output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.yml").write_text(RESULTS.read_text())
    fake.set_state("101", "COMPLETED")
    with pytest.raises(InputError, match="every task succeeded"):
        executor.resume(record, output=output)


def test_no_controller_is_refused_with_the_remedy(fake: FakeSlurm, tmp_path: Path) -> None:
    fake.up = False
    with pytest.raises(SchedulerUnavailableError) as info:
        SlurmExecutor(SlurmCli(fake), FakeContainers).start(new_run(tmp_path), output=output)
    assert info.value.exit_code == 2 and "make slurm" in str(info.value)
    assert not any(call[0] == "sbatch" for call in fake.calls)


def test_missing_slurm_commands_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SchedulerUnavailableError, match="sbatch is not on PATH"):
        SlurmCli().submit(Path("job.sh"))


def test_sbatch_refusal_names_the_reason(fake: FakeSlurm) -> None:
    fake.sbatch_error = "invalid partition specified: nope"
    with pytest.raises(SchedulerError, match="invalid partition specified: nope"):
        SlurmCli(fake).submit(Path("job.sh"))


def test_parsable_output_with_a_cluster_name() -> None:
    def runner(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 0, "812;cluster-a\n", "")

    assert SlurmCli(runner).submit(Path("job.sh"), array="0,2") == (
        "812", ["sbatch", "--parsable", "--array=0,2", "job.sh"])


def test_job_times_are_recorded(executor: SlurmExecutor, fake: FakeSlurm, tmp_path: Path) -> None:
    record = executor.start(new_run(tmp_path, count=1), output=output)
    fake.jobs["101"] = ("JobId=101 JobState=TIMEOUT Reason=TimeLimit ExitCode=0:15 StartTime=2026-01-01T10:00:00 "
                        "EndTime=2026-01-01T10:01:05")
    task = executor.refresh(record).tasks[0]
    assert task.state == "timeout" and task.started_at is not None and task.finished_at is not None
    assert (task.finished_at - task.started_at).total_seconds() == 65


def test_job_lines_and_pending_array_elements() -> None:
    line = ("JobId=7 ArrayJobId=7 ArrayTaskId=1-3,5%2 JobName=x JobState=PENDING Reason=Priority ExitCode=0:0 "
            "Command=/a b=c")
    assert parse_job_line(line)["ArrayTaskId"] == "1-3,5%2"

    def runner(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 0, line + "\n", "")

    info = SlurmCli(runner).job("7_5")
    assert info is not None and (info.state, info.reason, info.exit_code) == ("PENDING", "Priority", 0)
    assert SlurmCli(runner).job("7_4") is None


def test_a_run_with_a_deployment_is_one_job_and_each_task_ends_by_its_own_exit_code(
        executor: SlurmExecutor, fake: FakeSlurm, tmp_path: Path) -> None:
    from orchestrator.schema.config import DeploymentLayer  # noqa: PLC0415
    from orchestrator.schema.deployment import ServedDeployment, resolve_deployment  # noqa: PLC0415
    record = new_run(tmp_path)
    deployment = resolve_deployment(DeploymentLayer(type="reference", port=8123))
    assert deployment is not None
    record.deployment = ServedDeployment(deployment=deployment, command=["python", "-m", "reference_endpoint"])
    record = executor.start(record, output=output)
    script = Path(record.slurm.script).read_text()  # type: ignore[union-attr]
    assert fake.calls[-1] == ["sbatch", "--parsable", record.slurm.script]  # type: ignore[union-attr]
    assert [t.job_id for t in record.tasks] == ["101", "101"] and not record.slurm.array  # type: ignore[union-attr]
    assert "--array" not in script and "server_here" in script
    assert store.load(record.id).deployment == record.deployment
    fake.set_state("101", "RUNNING")
    out = Path(record.tasks[0].output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.yml").write_text(RESULTS.read_text())
    (tmp_path / "shared" / "exit").mkdir()
    (tmp_path / "shared" / "exit" / "task-0.code").write_text("0\n")
    record = executor.refresh(record)  # the first task ended while the job runs the second
    assert [t.state for t in record.tasks] == ["succeeded", "running"]
    (tmp_path / "shared" / "exit" / "task-1.code").write_text("3\n")
    fake.set_state("101", "FAILED", exit_code="3:0")
    record = executor.refresh(record)  # the job failed, but only because of its second task
    assert [(t.state, t.exit_code) for t in record.tasks] == [("succeeded", 0), ("failed", 3)]
    again = executor.resume(record, output=output)
    assert [t.job_id for t in again.tasks] == ["101", "102"]
    assert not (tmp_path / "shared" / "exit" / "task-1.code").exists()
    assert (tmp_path / "shared" / "exit" / "task-0.code").exists()  # the job skips the task that succeeded

"""Local runs of several tasks at once (--max_parallel), within endpoint limits; Ctrl-C and resume of such a run;
the Slurm array's throttle. Through the CLI (or the api it calls) over launcher doubles that record concurrency."""

from __future__ import annotations

import _thread
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.host import api
from orchestrator.host.backends.slurm.script import array_spec
from orchestrator.host.records import store
from orchestrator.schema.record import RunRecord
from tests.doubles.containers import FakeContainers, StoppingContainers
from tests.doubles.launcher import FakeLauncher, HeldLauncher, TimedLauncher
from tests.doubles.services import fake_services
from tests.doubles.slurm import FakeSlurm
from tests.unit.evals_app import Evals
from tests.unit.test_host_cli import IMAGES, URL
from tests.unit.test_run_lifecycle import RUN, only_run, write_results

TASKS = ["gsm8k", "humaneval", "mbpp", "piqa"]
OTHER_URL = "http://localhost:9000/v1/completions"


def eval_types(names: list[str]) -> list[str]:
    return [arg for name in names for arg in ("--eval_type", name)]


def test_max_parallel_runs_that_many_containers_at_once_output_to_logs_only(tmp_path: Path) -> None:
    launcher = TimedLauncher(seconds=0.3, behaviour=write_results)
    evals = Evals(fake_services(images=IMAGES, launcher=launcher))
    code, out, err = evals(*RUN, *eval_types(TASKS), "--output_dir", str(tmp_path), "--max_parallel", "2")
    assert code == 0, err
    assert launcher.peak() == 2 and len(launcher.runs) == 4
    record = store.load(only_run())
    assert record.max_parallel == 2 and [t.state for t in record.tasks] == ["succeeded"] * 4
    assert "harness output of" not in out  # the containers' output went to their logs
    assert all(f"harness output of {t.task}" in Path(t.log).read_text() for t in record.tasks)


def test_max_parallel_one_runs_one_after_another_and_streams(tmp_path: Path) -> None:
    launcher = TimedLauncher(seconds=0.05, behaviour=write_results)
    evals = Evals(fake_services(images=IMAGES, launcher=launcher))
    code, out, err = evals(*RUN, *eval_types(TASKS[:3]), "--output_dir", str(tmp_path), "--max_parallel", "1")
    assert code == 0, err
    assert launcher.peak() == 1 and [name for name, *_ in launcher.runs] == TASKS[:3]
    assert "harness output of mbpp" in out


def test_max_parallel_below_one_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    evals = Evals(fake_services(images=IMAGES))
    assert evals.main([*RUN, "--eval_type", "gsm8k", "--output_dir", str(tmp_path), "--max_parallel", "0"]) == 2
    err = capsys.readouterr().err
    assert "--max_parallel 0" in err and len(err.strip().splitlines()) == 1 and store.run_ids() == []


def planned(tmp_path: Path, names: list[str], *, parallelism: int, max_parallel: int | None) -> api.PlannedRun:
    """A run planned as `evals run` plans it, each task sending ``parallelism`` requests at once."""
    return api.plan(eval_type=names, model_id="m", model_url=URL, model_type="completions", api_key_name=None,
                    output_dir=tmp_path / "out", run_config=None, overrides=f"config.params.parallelism={parallelism}",
                    data_dir=None, offline=False, cache_dir=None, data=None, network="auto", executor="local",
                    slurm_config=None, partition=None, account=None, time_limit=None, gres=None, gpus=None,
                    container_runtime=None, output_root=None, sbatch=None, max_parallel=max_parallel,
                    choose=api.image_chooser(fake_services(images=IMAGES).catalog, harness=None, image=None,
                                             replay=None))


def start(run: api.PlannedRun, launcher: TimedLauncher) -> RunRecord:
    services = fake_services(images=IMAGES, launcher=launcher)
    return api.start(run, executor_for=services.executor_for, check_endpoint=None, announce=lambda: None,
                     output=lambda chunk: None)


def test_endpoint_limit_bounds_requests_across_that_endpoints_tasks_only(tmp_path: Path) -> None:
    run = planned(tmp_path, TASKS, parallelism=2, max_parallel=4)
    last = run.record.tasks[3]  # on another endpoint, which has no limit
    last.resolved_config = (last.resolved_config or "").replace(URL, OTHER_URL)
    run.record.endpoint_limits = {URL: 4}  # two tasks of 2 requests each
    launcher = TimedLauncher(seconds=0.3, behaviour=write_results)
    record = start(run, launcher)
    assert [t.state for t in record.tasks] == ["succeeded"] * 4
    assert launcher.peak(set(TASKS[:3])) == 2  # 3 of them would be 6 requests to URL
    assert launcher.peak() == 3  # the other endpoint's task ran beside them


def test_a_task_above_its_endpoints_limit_runs_alone_and_does_not_wait_forever(tmp_path: Path) -> None:
    run = planned(tmp_path, TASKS[:3], parallelism=8, max_parallel=3)
    run.record.endpoint_limits = {URL: 4}
    launcher = TimedLauncher(seconds=0.1, behaviour=write_results)
    record = start(run, launcher)
    assert [t.state for t in record.tasks] == ["succeeded"] * 3 and launcher.peak() == 1


def test_without_endpoint_limits_only_max_parallel_bounds(tmp_path: Path) -> None:
    run = planned(tmp_path, TASKS, parallelism=8, max_parallel=3)
    launcher = TimedLauncher(seconds=0.3, behaviour=write_results)
    start(run, launcher)
    assert launcher.peak() == 3


def test_ctrl_c_stops_every_container_records_states_and_resume_runs_only_unfinished(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    held = HeldLauncher(on_start=lambda count: _thread.interrupt_main() if count == 2 else None)
    containers = StoppingContainers(on_stop=held.release.set)
    evals = Evals(fake_services(images=IMAGES, launcher=held, containers=containers))
    code = evals.main([*RUN, *eval_types(TASKS[:3]), "--output_dir", str(tmp_path), "--max_parallel", "2"])
    assert code == 130 and "interrupted" in capsys.readouterr().err
    record = store.load(only_run())
    assert containers.stopped == [f"evals.run.id={record.id}"]
    assert [t.state for t in record.tasks] == ["interrupted", "interrupted", "cancelled"]
    assert "not started" in (record.tasks[2].reason or "")
    assert len(held.launched) == 2

    again = FakeLauncher(behaviour=write_results)
    resumed = Evals(fake_services(images=IMAGES, launcher=again, containers=FakeContainers()))
    code, _, err = resumed("resubmit", record.id, "--max_parallel", "3")
    assert code == 0, err
    assert sorted(s.labels["evals.run.task"] for s in again.launched) == sorted(TASKS[:3])
    final = store.load(record.id)
    assert [t.state for t in final.tasks] == ["succeeded"] * 3 and final.max_parallel == 3
    assert [t.attempts for t in final.tasks] == [2, 2, 1]


def test_cancel_marker_stops_a_parallel_run_from_starting_more(tmp_path: Path) -> None:
    def cancel_during(spec: object, output: object) -> None:
        store.request_cancel(only_run())

    launcher = TimedLauncher(seconds=0.2, behaviour=cancel_during)
    evals = Evals(fake_services(images=IMAGES, launcher=launcher))
    code, _, _ = evals(*RUN, *eval_types(TASKS), "--output_dir", str(tmp_path), "--max_parallel", "2")
    assert code == 1 and len(launcher.runs) == 2
    assert [t.state for t in store.load(only_run()).tasks] == ["cancelled"] * 4


def test_slurm_array_is_throttled_by_max_parallel(tmp_path: Path) -> None:
    slurm = FakeSlurm()
    evals = Evals(fake_services(images=IMAGES, slurm=slurm))
    code, out, err = evals(*RUN, "--executor", "slurm", *eval_types(TASKS[:3]), "--output_root", str(tmp_path),
                           "--max_parallel", "2")
    assert code == 0, err
    record = store.load(only_run())
    assert "#SBATCH --array=0-2%2\n" in Path(record.slurm.script).read_text()  # type: ignore[union-attr]
    assert "(array 0-2%2)" in out and record.max_parallel == 2
    slurm.set_state("101_0", "COMPLETED")
    slurm.set_state("101_1", "FAILED", exit_code="1:0")
    slurm.set_state("101_2", "FAILED", exit_code="1:0")
    Path(record.tasks[0].output_dir, "results.yml").write_text(Path(
        "tests/fixtures/results/lm_eval_results.yml").read_text())
    code, _, err = evals("resubmit", record.id)
    assert code == 0, err
    assert slurm.calls[-1][:3] == ["sbatch", "--parsable", "--array=1,2%2"]


@pytest.mark.parametrize(("indices", "limit", "spec"), [
    ([0, 1, 2], None, "0-2"), ([0, 1, 2], 2, "0-2%2"), ([1, 3], 1, "1,3%1"), ([2], None, "2"),
])
def test_array_spec(indices: list[int], limit: int | None, spec: str) -> None:
    assert array_spec(indices, max_parallel=limit) == spec


def test_a_parallel_run_shows_the_log_tail_of_a_failed_task(tmp_path: Path) -> None:
    def fail_loudly(spec: object, output: Callable[[bytes], None]) -> None:
        output(b"Traceback: the harness broke\n")

    launcher = TimedLauncher(seconds=0.05, behaviour=fail_loudly, exit_code=3)
    evals = Evals(fake_services(images=IMAGES, launcher=launcher))
    code, out, err = evals(*RUN, *eval_types(TASKS[:2]), "--output_dir", str(tmp_path), "--max_parallel", "2")
    assert code != 0 and "the harness broke" in err and "the harness broke" not in out

"""`evals run|status|logs|cancel|resubmit|runs` through the CLI built with test doubles: local runs with a fake
launcher, Slurm runs with a fake sbatch/scontrol. Each command runs as a new invocation reading the record from disk."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from orchestrator.host.backends.container import LaunchSpec, Output
from orchestrator.host.data.prefetch import PrefetchItem, prefetch
from orchestrator.host.records import store
from orchestrator.schema.container import RESULTS_DIR
from tests.doubles.containers import FakeContainers
from tests.doubles.launcher import FakeLauncher
from tests.doubles.services import fake_services
from tests.doubles.slurm import FakeSlurm
from tests.unit.evals_app import Evals
from tests.unit.test_host_cli import IMAGES, RESULTS, URL
from tests.unit.test_prefetch import fill_cache, save_double

RUN = ["run", "--model_id", "m", "--model_url", URL, "--model_type", "completions"]


def write_results(spec: LaunchSpec, output: Output) -> None:
    output(f"harness output of {spec.labels['evals.run.task']}\n".encode())
    out = next(m.source for m in spec.mounts if m.target == RESULTS_DIR)
    (out / "results.yml").write_text(RESULTS.read_text())


@pytest.fixture
def launcher() -> FakeLauncher:
    return FakeLauncher(behaviour=write_results)


@pytest.fixture
def slurm() -> FakeSlurm:
    return FakeSlurm()


@pytest.fixture
def containers() -> FakeContainers:
    return FakeContainers()


@pytest.fixture
def evals(launcher: FakeLauncher, slurm: FakeSlurm, containers: FakeContainers) -> Evals:
    return Evals(fake_services(images=IMAGES, launcher=launcher, slurm=slurm, containers=containers))


def only_run() -> str:
    ids = store.run_ids()
    assert len(ids) == 1
    return ids[0]


def test_local_run_of_several_tasks_runs_them_in_order_and_records_them(evals: Evals, launcher: FakeLauncher,
                                                                        tmp_path: Path) -> None:
    code, out, err = evals(*RUN, "--eval_type", "gsm8k", "--eval_type", "humaneval", "--output_dir",
                           str(tmp_path / "out"))
    assert code == 0, err
    assert [s.labels["evals.run.task"] for s in launcher.launched] == ["gsm8k", "humaneval"]
    assert [s.mounts[0].source for s in launcher.launched] == [
        (tmp_path / "out" / "lm-eval-gsm8k").resolve(), (tmp_path / "out" / "lm-eval-humaneval").resolve()]
    assert len({s.name for s in launcher.launched}) == 2
    record = store.load(only_run())
    assert record.executor == "local" and [t.state for t in record.tasks] == ["succeeded", "succeeded"]
    assert record.pid == os.getpid() and all(t.attempts == 1 and t.exit_code == 0 for t in record.tasks)
    assert "harness output of humaneval" in Path(record.tasks[1].log).read_text()
    assert "exact_match__strict-match" in out and "succeeded" in out


def test_status_logs_and_runs_from_a_new_invocation(evals: Evals, tmp_path: Path) -> None:
    assert evals(*RUN, "--eval_type", "gsm8k", "--output_dir", str(tmp_path / "o"))[0] == 0
    run_id = only_run()
    code, out, _ = evals("status", run_id)
    assert code == 0 and "succeeded" in out and "0.7000" in out and "results.yml" in out
    code, out, _ = evals("status", "--json")
    assert json.loads(out)["id"] == run_id
    code, out, _ = evals("logs", run_id)
    assert code == 0 and "harness output of gsm8k" in out
    code, out, _ = evals("runs")
    assert run_id in out and "gsm8k: succeeded" in out


def test_unknown_run_id_is_bad_input_with_close_matches(evals: Evals, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert evals(*RUN, "--eval_type", "gsm8k", "--output_dir", str(tmp_path / "o"))[0] == 0
    run_id = only_run()
    assert evals.main(["status", run_id[:-1] + "x"]) == 2
    assert f"did you mean {run_id}" in capsys.readouterr().err


def test_failed_local_task_keeps_its_exit_code_and_can_be_resumed(evals: Evals, launcher: FakeLauncher, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    launcher.exit_code, launcher.behaviour = 3, None
    assert evals.main([*RUN, "--eval_type", "gsm8k", "--output_dir", str(tmp_path / "o")]) == 3
    assert "evals resubmit" in capsys.readouterr().err
    run_id = only_run()
    assert store.load(run_id).tasks[0].state == "failed"
    launcher.exit_code, launcher.behaviour = 0, write_results
    assert evals.main(["run", "--resume", run_id, "--dry_run"]) == 2  # a dry run must not start anything
    assert "--resume does not take --dry_run" in capsys.readouterr().err and len(launcher.launched) == 1
    assert evals.main(["resubmit", run_id]) == 0
    record = store.load(run_id)
    assert record.tasks[0].state == "succeeded" and record.tasks[0].attempts == 2
    assert launcher.launched[0].args == launcher.launched[1].args
    assert evals.main(["run", "--resume", run_id]) == 2  # nothing left to resume
    assert "every task succeeded" in capsys.readouterr().err


def test_cancel_of_a_local_run_whose_process_is_gone(evals: Evals, containers: FakeContainers, tmp_path: Path) -> None:
    assert evals(*RUN, "--eval_type", "gsm8k", "--output_dir", str(tmp_path / "o"))[0] == 0
    run_id = only_run()
    record = store.load(run_id)
    record.tasks[0].state, record.pid = "running", 2**22 + 12345  # a pid that does not exist
    store.save(record)
    code, out, _ = evals("status", run_id)
    assert "interrupted" in out
    record.tasks[0].state = "running"
    store.save(record)
    code, out, _ = evals("cancel", run_id)
    assert code == 0 and "cancelled" in out
    assert containers.stopped == [f"evals.run.id={run_id}"] and containers.removed == [f"evals.run.id={run_id}"]


def test_cancel_marker_stops_a_local_run_before_its_next_task(evals: Evals, launcher: FakeLauncher,
                                                              tmp_path: Path) -> None:
    def cancel_during_first(spec: LaunchSpec, output: Output) -> None:
        store.request_cancel(spec.labels["evals.run.id"])

    launcher.behaviour = cancel_during_first
    code, _, _ = evals(*RUN, "--eval_type", "gsm8k", "--eval_type", "humaneval", "--output_dir", str(tmp_path),
                       "--max_parallel", "1")
    assert code == 1
    assert len(launcher.launched) == 1
    assert [t.state for t in store.load(only_run()).tasks] == ["cancelled", "cancelled"]


def test_slurm_run_submits_and_status_follows_the_scheduler(evals: Evals, slurm: FakeSlurm, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "sk-unit-999")
    code, out, err = evals(*RUN, "--executor", "slurm", "--eval_type", "gsm8k", "--eval_type", "humaneval",
                           "--api_key_name", "MY_KEY", "--output_root", str(tmp_path / "shared"), "--partition",
                           "batch", "--time", "30", "--sbatch=--qos=high")
    assert code == 0, err
    run_id = only_run()
    assert out.strip().splitlines()[-1] == run_id and "submitted job 101 (array 0-1)" in out
    record = store.load(run_id)
    assert [t.job_id for t in record.tasks] == ["101_0", "101_1"]
    assert [t.output_dir for t in record.tasks] == [str(tmp_path / "shared" / run_id / f"lm-eval-{n}")
                                                    for n in ("gsm8k", "humaneval")]
    script = Path(record.slurm.script).read_text()  # type: ignore[union-attr]
    assert "#SBATCH --partition=batch\n#SBATCH --time=30\n#SBATCH --qos=high\n" in script
    assert "sk-unit-999" not in script and "sk-unit-999" not in json.dumps(slurm.calls)
    for task in record.tasks:
        Path(task.output_dir, "results.yml").write_text(RESULTS.read_text())
    slurm.set_state("101_0", "COMPLETED")
    slurm.set_state("101_1", "RUNNING")
    code, out, _ = evals("status", run_id)
    assert "succeeded" in out and "running" in out and "0.7000" in out


def test_slurm_failure_shows_the_log_tail(evals: Evals, slurm: FakeSlurm, tmp_path: Path) -> None:
    assert evals(*RUN, "--executor", "slurm", "--eval_type", "gsm8k", "--output_root", str(tmp_path))[0] == 0
    record = store.load(only_run())
    Path(record.tasks[0].log).write_text("".join(f"line {i}\n" for i in range(40)) + "ValueError: no such task\n")
    slurm.set_state("101", "FAILED", exit_code="1:0")
    _, out, err = evals("status", record.id)
    assert "failed" in out and "ValueError: no such task" in err and "line 39" in err and "line 5\n" not in err


def test_slurm_dry_run_shows_the_batch_script_and_writes_nothing(evals: Evals, slurm: FakeSlurm,
                                                                  tmp_path: Path) -> None:
    code, out, _ = evals(*RUN, "--executor", "slurm", "--eval_type", "gsm8k", "--output_root", str(tmp_path),
                         "--container_runtime", "apptainer", "--dry_run")
    assert code == 0 and "Batch script (sbatch --parsable):" in out and "apptainer exec --cleanenv" in out
    assert store.run_ids() == [] and slurm.calls == [] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("args", "needle"), [
    (["--partition", "batch"], "Slurm settings were given to a local run"),
    (["--executor", "pbs"], "unknown executor 'pbs'"),
    (["--executor", "slurm", "--time", "1h"], "--time:"),
    (["--executor", "slurm", "--eval_type", "gsm8k"], "task lm-eval.gsm8k is given twice"),
])
def test_bad_run_input_is_one_line_exit_2(args: list[str], needle: str, evals: Evals, slurm: FakeSlurm,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert evals.main([*RUN, "--eval_type", "gsm8k", *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1
    assert store.run_ids() == [] and not any(call[0] == "sbatch" for call in slurm.calls)


def test_slurm_down_is_refused_with_make_slurm(evals: Evals, slurm: FakeSlurm, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    slurm.up = False
    assert evals.main([*RUN, "--executor", "slurm", "--eval_type", "gsm8k", "--output_root", str(tmp_path)]) == 2
    assert "make slurm" in capsys.readouterr().err
    assert store.run_ids() == [] and list(tmp_path.iterdir()) == []


def test_slurm_run_from_a_prefetched_directory_uses_its_cluster_image(evals: Evals, slurm: FakeSlurm, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`evals run --executor slurm --data DIR` with enroot: the job starts the directory's .sqsh, not dockerd://."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "enroot").write_text('#!/bin/sh\n# test double of enroot import\nprintf sqsh > "$3"\n')
    (bin_dir / "enroot").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    carry = tmp_path / "carry"
    prefetch([PrefetchItem(image=IMAGES[0], eval_type="gsm8k")], carry, launcher=FakeLauncher(behaviour=fill_cache),
             output=lambda _: None, save=save_double, id_of=lambda _: "sha256:" + "0" * 64, report=lambda _: None,
             image_formats=("enroot",))
    code, out, err = evals(*RUN, "--eval_type", "gsm8k", "--executor", "slurm", "--output_root", str(tmp_path / "out"),
                           "--container_runtime", "enroot", "--data", str(carry), "--dry_run")
    assert code == 0, err
    sqsh = (carry / "images" / (IMAGES[0].image.replace("/", "_").replace(":", "_") + ".sqsh")).resolve()
    assert f"--container-image={sqsh}" in out or f"--container-image {sqsh}" in out, out[-3000:]
    assert "dockerd://" not in out

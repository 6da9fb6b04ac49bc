"""`evals run --suite`: the suite file, the layer order per pair, every problem at once, summary.yml, the table,
the exit code; over the CLI's test doubles (images from labels, a launcher that plays each pair's container)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from orchestrator.host import api
from orchestrator.host.backends.container import LaunchSpec, Output
from orchestrator.host.records import store
from orchestrator.host.records.summary import build_summary, cell, summary_table
from orchestrator.schema.container import RESULTS_DIR
from orchestrator.schema.errors import ConfigError, ProblemsError
from orchestrator.schema.loading import load_model
from orchestrator.schema.record import SuiteRecord
from orchestrator.schema.suite import Suite
from orchestrator.schema.summary import ScoreSummary
from tests.doubles.catalog import FakeCatalog
from tests.doubles.services import fake_services
from tests.unit.evals_app import Evals
from tests.unit.test_host_cli import IMAGES, RESULTS

URL_A = "http://localhost:8000/v1/completions"
URL_B = "http://localhost:8001/v1/completions"


def suite_text(**changes: str) -> str:
    text = f"""\
name: release
defaults:
  config:
    params: {{limit_samples: 5, parallelism: 8, temperature: 0.1, max_new_tokens: 64}}
models:
  - {{name: small, url: "{URL_A}", model_type: completions, model_id: org/small, max_parallel_requests: 2,
     overrides: "config.params.temperature=0.3,target.api_endpoint.url=http://elsewhere:1/v1/completions"}}
  - {{name: big, url: "{URL_B}", model_type: completions, model_id: org/big}}
tasks:
  - {{eval_type: gsm8k, overrides: "config.params.limit_samples=3,config.params.temperature=0.2"}}
  - {{eval_type: lm-eval.mmlu}}
"""
    for old, new in changes.items():
        text = text.replace(old, new)
    return text


def write_suite(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yml"
    path.write_text(text)
    return path


def plan(path: Path, out: Path, *, check_keys: bool = True) -> api.PlannedRun:
    return api.plan_suite(suite_file=path, output_dir=out, offline=False, cache_dir=None, data=None, network="auto",
                          executor="local", slurm_config=None, partition=None, account=None, time_limit=None,
                          gres=None, gpus=None, container_runtime=None, output_root=None, sbatch=None,
                          catalog=FakeCatalog(IMAGES), check_keys=check_keys)


# --------------------------------------------------------------------------- the file


def test_the_suite_file_is_strict_and_errors_name_file_and_line(tmp_path: Path) -> None:
    path = write_suite(tmp_path, suite_text(**{"model_id: org/big": "model_id: org/big, colour: red"}))
    with pytest.raises(ConfigError, match=r"suite.yml:8: unknown key 'models.1.colour'"):
        load_model(Suite, path)


@pytest.mark.parametrize(("change", "expected"), [
    ({"name: big": "name: ../big"}, "models.1.name: a name is letters"),
    ({"config.params.limit_samples=3": "config.params.limit_sample=3"}, "tasks.0.overrides: unknown key"),
    ({"model_id: org/big}": "model_id: org/big, api_key_name: sk-abc123}"}, "not an environment variable name"),
    ({"max_parallel_requests: 2": "max_parallel_requests: true"}, "a boolean, where a number belongs"),
])
def test_bad_values_are_refused_when_the_file_is_read(tmp_path: Path, change: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)) as err:
        load_model(Suite, write_suite(tmp_path, suite_text(**change)))
    assert "sk-abc123" not in str(err.value)


def test_the_committed_example_suite_is_valid() -> None:
    suite = load_model(Suite, Path(__file__).resolve().parents[2] / "examples" / "demo-suite.yml")
    assert [m.name for m in suite.models] and [t.eval_type for t in suite.tasks]


# --------------------------------------------------------------------------- planning


def test_layer_order_defaults_then_task_then_model_and_the_model_endpoint_wins(tmp_path: Path) -> None:
    run = plan(write_suite(tmp_path, suite_text()), tmp_path / "out")
    by_pair = {(t.model, t.task): run.tasks[t.index].plan.evaluation for t in run.record.tasks}
    assert list(by_pair) == [("small", "gsm8k"), ("small", "mmlu"), ("big", "gsm8k"), ("big", "mmlu")]
    small_gsm8k = by_pair["small", "gsm8k"]
    assert small_gsm8k.config.params.limit_samples == 3  # task overrides > suite defaults
    assert small_gsm8k.config.params.temperature == 0.3  # model overrides > task overrides
    assert small_gsm8k.config.params.max_new_tokens == 64  # suite defaults > framework defaults
    assert small_gsm8k.target.api_endpoint.url == URL_A  # the model's url > its own overrides
    assert small_gsm8k.target.api_endpoint.model_id == "org/small"
    assert by_pair["big", "gsm8k"].config.params.temperature == 0.2
    assert by_pair["big", "mmlu"].config.params.limit_samples == 5


def test_parallelism_is_clipped_to_the_endpoint_limit_and_recorded(tmp_path: Path) -> None:
    run = plan(write_suite(tmp_path, suite_text()), tmp_path / "out")
    params = {(t.model, t.task): run.tasks[t.index].plan.evaluation.config.params.parallelism
              for t in run.record.tasks}
    assert params == {("small", "gsm8k"): 2, ("small", "mmlu"): 2, ("big", "gsm8k"): 8, ("big", "mmlu"): 8}
    assert run.record.endpoint_limits == {URL_A: 2}


def test_outputs_go_to_root_model_harness_task_and_the_record_names_the_suite(tmp_path: Path) -> None:
    path = write_suite(tmp_path, suite_text())
    run = plan(path, tmp_path / "out")
    assert [Path(t.output_dir) for t in run.record.tasks] == [
        (tmp_path / "out" / model / f"lm-eval-{task}").resolve()
        for model in ("small", "big") for task in ("gsm8k", "mmlu")]
    assert run.record.suite == SuiteRecord(name="release", file=str(path.resolve()), models=["small", "big"],
                                           output_root=str((tmp_path / "out").resolve()))


def test_default_output_root_names_suite_and_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run = api.plan_suite(suite_file=write_suite(tmp_path, suite_text()), output_dir=None, offline=False,
                         cache_dir=None, data=None, network="auto", executor="local", slurm_config=None,
                         partition=None, account=None, time_limit=None, gres=None, gpus=None, container_runtime=None,
                         output_root=None, sbatch=None, catalog=FakeCatalog(IMAGES), check_keys=False)
    assert run.record.suite is not None
    assert run.record.suite.output_root == str(tmp_path / "results" / f"suite-release-{run.record.id}")


def test_task_subset_of_models(tmp_path: Path) -> None:
    run = plan(write_suite(tmp_path, suite_text(**{"- {eval_type: lm-eval.mmlu}": "- {eval_type: lm-eval.mmlu, "
                                                                                   "models: [big]}"})), tmp_path / "o")
    assert [(t.model, t.task) for t in run.record.tasks] == [("small", "gsm8k"), ("big", "gsm8k"), ("big", "mmlu")]


def test_every_problem_of_every_pair_is_listed_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNSET_SUITE_KEY", raising=False)
    text = suite_text(**{
        "name: big,": "name: small,",  # a model name given twice
        "model_id: org/small,": "model_id: org/small, api_key_name: UNSET_SUITE_KEY,",
        "  - {eval_type: lm-eval.mmlu}": "  - {eval_type: lm-eval.mmlu}\n  - {eval_type: no_such_task}\n"
                                         "  - {eval_type: ocrbench}\n  - {eval_type: gsm8k, harness: bfcl}\n"
                                         "  - {eval_type: gsm8k_cot_llama}\n"
                                         "  - {eval_type: arc_easy, models: [nobody]}",
    })
    with pytest.raises(ProblemsError) as caught:
        plan(write_suite(tmp_path, text), tmp_path / "out")
    problems = caught.value.problems
    assert any("model name 'small' is given 2 times" in p for p in problems)
    assert any("names model 'nobody'" in p for p in problems)
    assert any("no_such_task" in p and "no built image offers" in p for p in problems)
    assert any("unknown harness 'bfcl'" in p for p in problems)
    assert any("ocrbench" in p and "does not support --model_type completions" in p for p in problems)
    assert any("UNSET_SUITE_KEY" in p and "api_key_name of model small" in p for p in problems)
    assert any("gsm8k_cot_llama" in p and "does not support" in p for p in problems)
    assert len(problems) == len(set(problems)) >= 7
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- the CLI


class PairLauncher:
    """Plays each pair's container: writes the results fixture (model id and task as the pair's), or fails the pairs
    whose output dir is in ``fail`` with exit code 3 after printing a line."""

    def __init__(self, fail: tuple[str, ...] = ()) -> None:
        self.fail, self.launched = fail, list[LaunchSpec]()

    def run(self, spec: LaunchSpec, *, output: Output) -> int:
        self.launched.append(spec)
        out = next(m.source for m in spec.mounts if m.target == RESULTS_DIR)
        if any(str(out).endswith(name) for name in self.fail):
            output(b"Traceback: the harness fell over\n")
            return 3
        resolved = yaml.safe_load((out / "run_config.yml").read_text())
        results = yaml.safe_load(RESULTS.read_text())
        results["target"]["api_endpoint"]["model_id"] = resolved["target"]["api_endpoint"]["model_id"]
        (out / "results.yml").write_text(yaml.safe_dump(results))
        output(b"container done\n")
        return 0


def test_a_suite_runs_every_pair_writes_summary_and_exits_1_when_one_failed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    launcher = PairLauncher(fail=("big/lm-eval-mmlu",))
    evals = Evals(fake_services(images=IMAGES, launcher=launcher))
    code = evals.main(["run", "--suite", str(write_suite(tmp_path, suite_text())), "--output_dir",
                       str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 1
    assert len(launcher.launched) == 4  # the failed pair did not stop the others
    assert "suite release" in captured.err and "incomplete: 1 of 4 pairs" in captured.err
    summary = yaml.safe_load((tmp_path / "out" / "summary.yml").read_text())
    record_id = store.latest()
    assert summary == yaml.safe_load((store.record_dir(record_id) / "summary.yml").read_text())
    assert summary["complete"] is False and summary["models"] == ["small", "big"]
    failed = next(p for p in summary["pairs"] if p["state"] == "failed")
    assert (failed["model"], failed["task"]) == ("big", "mmlu") and failed["reason"] == "exited with code 3"
    assert "Traceback: the harness fell over" in failed["log_tail"]
    good = next(p for p in summary["pairs"] if (p["model"], p["task"]) == ("small", "gsm8k"))
    assert good["scores"][0]["value"] == 0.7 and good["scores"][0]["ci_method"] == "normal"
    assert good["resolved_config"].endswith("out/small/lm-eval-gsm8k/run_config.yml")
    assert re.search(r"lm-eval\.gsm8k.*0\.7000 ± 0\.1960.*0\.7000 ± 0\.1960", captured.out)
    assert re.search(r"lm-eval\.mmlu.*0\.7000 ± 0\.1960.*failed", captured.out)


def test_show_run_id_prints_the_table_and_a_suite_that_succeeded_exits_0(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    evals = Evals(fake_services(images=IMAGES, launcher=PairLauncher()))
    assert evals.main(["run", "--suite", str(write_suite(tmp_path, suite_text())), "--output_dir",
                       str(tmp_path / "out")]) == 0
    capsys.readouterr()
    (tmp_path / "out" / "summary.yml").unlink()
    code, out, _ = evals("show", store.latest())
    assert code == 0
    assert "small" in out and "big" in out and out.count("0.7000 ± 0.1960") == 4
    assert (tmp_path / "out" / "summary.yml").is_file()


@pytest.mark.parametrize("flag", [["--eval_type", "gsm8k"], ["--model_id", "m"], ["--overrides", "a.b=1"],
                                  ["--harness", "lm-eval"], ["--resume", "x"]])
def test_flags_a_suite_states_are_refused_with_it(tmp_path: Path, flag: list[str],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    evals = Evals(fake_services(images=IMAGES, launcher=PairLauncher()))
    assert evals.main(["run", "--suite", str(write_suite(tmp_path, suite_text())), *flag]) == 2
    err = capsys.readouterr().err
    assert f"{flag[0]} cannot be combined with it" in err and len(err.strip().splitlines()) == 1


def test_problems_are_printed_as_a_header_and_one_line_each(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    launcher = PairLauncher()
    evals = Evals(fake_services(images=IMAGES, launcher=launcher))
    path = write_suite(tmp_path, suite_text(**{"eval_type: lm-eval.mmlu": "eval_type: nope"}))
    assert evals.main(["run", "--suite", str(path), "--output_dir", str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("evals: error: suite ") and "1 problem(s); nothing was started" in lines[0]
    assert lines[1].startswith("  - tasks[1] nope: no built image offers task 'nope'")
    assert launcher.launched == [] and store.run_ids() == []


def test_dry_run_of_a_suite_describes_every_pair(tmp_path: Path) -> None:
    evals = Evals(fake_services(images=IMAGES, launcher=PairLauncher()))
    code, out, err = evals("run", "--suite", str(write_suite(tmp_path, suite_text())), "--dry_run")
    assert code == 0, err
    assert out.count("Rendered config:") == 4 and "small/lm-eval-gsm8k" in out


# --------------------------------------------------------------------------- the table


def test_cells_show_the_larger_side_of_the_interval() -> None:
    assert cell(ScoreSummary(name="acc", value=0.5, ci_lower=0.3, ci_upper=0.6)) == "0.5000 ± 0.2000"
    assert cell(ScoreSummary(name="acc", value=0.5)) == "0.5000"


def test_a_plain_run_summarises_by_the_results_model_id(tmp_path: Path) -> None:
    evals = Evals(fake_services(images=IMAGES, launcher=PairLauncher()))
    code, _, err = evals("run", "--eval_type", "gsm8k", "--model_id", "plain/model", "--model_url", URL_A,
                         "--model_type", "completions", "--output_dir", str(tmp_path / "p"))
    assert code == 0, err
    summary = build_summary(store.load(store.latest()))
    assert summary.suite is None and summary.models == ["plain/model"] and summary.complete
    table = summary_table(summary)
    assert [c.header for c in table.columns][2:] == ["plain/model"] or str(table.columns[2].header) == "plain/model"


# --------------------------------------------------------------------------- export: and a model's deployment:


def test_the_suites_export_runs_when_it_ends(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = suite_text() + "export:\n  csv: {path: scores.csv}\n  json: {path: scores.json}\n"
    evals = Evals(fake_services(images=IMAGES, launcher=PairLauncher()))
    assert evals.main(["run", "--suite", str(write_suite(tmp_path, text)), "--output_dir", str(tmp_path / "out")]) == 0
    assert "exported to csv" in capsys.readouterr().err
    rows = (tmp_path / "out" / "scores.csv").read_text().splitlines()
    assert len(rows) > 4 and all(model in "".join(rows) for model in ("small", "big"))
    assert store.load(store.latest()).suite.export is not None  # type: ignore[union-attr]  # a resume exports too


def test_a_failed_export_keeps_the_results_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "taken").mkdir()  # a directory where the CSV file should go: the csv target fails
    text = suite_text() + f"export:\n  csv: {{path: {tmp_path / 'taken'}}}\n  json: {{path: scores.json}}\n"
    evals = Evals(fake_services(images=IMAGES, launcher=PairLauncher()))
    with pytest.raises(SystemExit) as code:  # as the real `evals` exits: export's own exit code
        evals.main(["run", "--suite", str(write_suite(tmp_path, text)), "--output_dir", str(tmp_path / "out")])
    assert code.value.code == 1
    err = capsys.readouterr().err
    assert "evals: error: export to csv failed" in err and "retry: evals export" in err  # what failed, how to retry
    assert (tmp_path / "out" / "summary.yml").is_file() and (tmp_path / "out" / "scores.json").is_file()


def test_export_settings_that_cannot_work_are_problems_before_anything_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    path = write_suite(tmp_path, suite_text() + "export:\n  mlflow: {experiment: x}\n")
    with pytest.raises(ProblemsError) as err:
        plan(path, tmp_path / "out")
    assert any(line.startswith("export: mlflow: no tracking URI") for line in err.value.problems)


def deployed_suite(**model: str) -> str:
    served = ", ".join(f"{k}: {v}" for k, v in {"type": "reference", "port": "8765", **model}.items())
    return suite_text(**{f'{{name: big, url: "{URL_B}", model_type: completions, model_id: org/big}}':
                         f"{{name: big, model_type: completions, deployment: {{{served}}}}}"})


def test_a_model_with_a_deployment_is_served_and_its_tasks_point_at_the_server(tmp_path: Path) -> None:
    planned = plan(write_suite(tmp_path, deployed_suite()), tmp_path / "out")
    record = planned.record
    assert record.deployment is not None and record.deployment.deployment.port == 8765
    big = [p.plan.evaluation.target.api_endpoint for p, t in zip(planned.tasks, record.tasks, strict=True)
           if t.model == "big"]
    assert [(e.url, e.model_id) for e in big] == [("http://127.0.0.1:8765/v1/completions", "SmolLM2-135M-Instruct")] * 2
    small = [p.plan.evaluation.target.api_endpoint.url for p, t in zip(planned.tasks, record.tasks, strict=True)
             if t.model == "small"]
    assert small == [URL_A, URL_A]


@pytest.mark.parametrize(("text", "expected"), [
    (deployed_suite().replace("name: big, model_type", f'name: big, url: "{URL_B}", model_type'),
     "a model with a deployment is served at its server's URL: drop url"),
    (suite_text(**{f'url: "{URL_B}", ': ""}), "a model needs url and model_id"),
])
def test_a_model_is_an_endpoint_or_a_server(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_model(Suite, write_suite(tmp_path, text))


def test_two_deployed_models_and_a_deployment_in_defaults_are_problems(tmp_path: Path) -> None:
    text = deployed_suite().replace(f'{{name: small, url: "{URL_A}", model_type: completions, model_id: org/small,',
                                    "{name: small, model_type: completions, deployment: {type: reference, port: 8766},")
    text = text.replace("defaults:\n", "defaults:\n  deployment: {type: reference}\n")
    with pytest.raises(ProblemsError) as err:
        plan(write_suite(tmp_path, text), tmp_path / "out")
    problems = "\n".join(err.value.problems)
    assert "defaults.deployment: a deployment serves one model" in problems
    assert "models small, big each deploy a server; a suite run deploys at most one" in problems

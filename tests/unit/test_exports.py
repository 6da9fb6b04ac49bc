"""`evals export` without a server: csv and json, the settings, run ids and directories, failing targets (doubles)."""

from __future__ import annotations

import csv
import io
import json
import shlex
from pathlib import Path

import pytest
from pydantic import ValidationError

from orchestrator.host.cli import app as cli
from orchestrator.host.exports import rows
from orchestrator.host.exports.command import FLAGS, build_config, retry_command
from orchestrator.host.exports.files import export_csv
from orchestrator.host.exports.targets import export_run
from orchestrator.host.exports.tasks import TaskExport, gather
from orchestrator.host.records import store
from orchestrator.schema.errors import InputError
from orchestrator.schema.tracking import ExportConfig
from tests.export_runs import METRIC, suite_dir, task_dir
from tests.unit import records as run_records


def evals(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`evals ARGS` as the console script runs it: exit code, stdout, stderr."""
    try:
        code = cli.main(list(args))
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    return suite_dir(tmp_path / "suite")


def test_csv_has_one_row_per_score_in_the_documented_columns(suite: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = evals(capsys, "export", str(suite), "--to", "csv")
    assert code == 0, err
    assert "exported to csv: 6 scores of 2 tasks to " + str(tmp_path / "suite.csv") in err
    table = list(csv.reader(io.StringIO((tmp_path / "suite.csv").read_text(encoding="utf-8"))))
    assert table[0] == ["model", "task", "harness", "kind", "name", "metric", "score", "value", "ci_low", "ci_high",
                        "ci_method", "stderr", "n", "scored", "unscored", "errors", "run_id", "output_dir"]
    by_key = {(row[0], row[3], row[5], row[6]): row for row in table[1:]}
    assert len(by_key) == 6
    strict = by_key[("large", "task", METRIC, METRIC)]
    assert strict[7:16] == ["0.9", "0.7", "1.0", "exact_binomial", "0.1", "10", "8", "1", "1"]
    assert strict[17] == str(suite / "large" / "lm-eval-gsm8k")
    assert by_key[("small", "task", "exact_match", "flexible-extract")][7:10] == ["0.35", "", ""]
    assert by_key[("small", "group", METRIC, METRIC)][4] == "gsm8k_group"


def test_json_holds_the_same_rows_as_the_csv(suite: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = evals(capsys, "export", str(suite), "--to", "json", "--to", "csv",
                         "--json_path", str(tmp_path / "out" / "s.json"), "--csv_path", str(tmp_path / "s.csv"))
    assert code == 0, err
    objects = json.loads((tmp_path / "out" / "s.json").read_text(encoding="utf-8"))
    table = list(csv.DictReader(io.StringIO((tmp_path / "s.csv").read_text(encoding="utf-8"))))
    assert [list(item) for item in objects] == [list(rows.COLUMNS)] * 6
    assert [{k: "" if v is None else str(v) for k, v in item.items()} for item in objects] == table
    assert err.index("exported to csv") < err.index("exported to json")  # the files in a fixed order


def test_a_group_repeating_its_task_is_one_row(tmp_path: Path) -> None:
    directory = task_dir(tmp_path / "t", model="m", score=0.5)
    document = (directory / "results.yml").read_text(encoding="utf-8").replace("gsm8k_group", "gsm8k")
    (directory / "results.yml").write_text(document, encoding="utf-8")
    found = rows.score_rows(gather([str(directory)]).tasks[0])
    assert [(row.kind, row.metric) for row in found] == [("task", METRIC), ("task", "exact_match")]


def test_metrics_params_and_tags_of_a_task(suite: Path) -> None:
    task = next(t for t in gather([str(suite)]).tasks if t.model == "small")
    metrics = rows.metrics(task)
    assert metrics[f"gsm8k/{METRIC}"] == 0.7
    assert metrics[f"gsm8k/{METRIC}/ci95_lower"] == 0.5 and metrics[f"gsm8k/{METRIC}/ci95_upper"] == 0.8
    assert metrics["gsm8k/exact_match/flexible-extract"] == 0.35
    assert metrics["gsm8k/samples/error"] == 1 and metrics["usage/prompt_tokens"] == 1000
    params = rows.params(task)
    assert params["image_digest"] == "sha256:" + "ab" * 32 and params["config.params.parallelism"] == "2"
    assert params["config.params.extra.exit_code"] == "0" and "config.params.limit_samples" not in params
    assert rows.tags(task)["evals.results_sha256"] == task.results_sha256 and "evals.run_id" not in rows.tags(task)


def test_a_run_id_exports_its_finished_tasks_and_names_the_others(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    done = task_dir(tmp_path / "out" / "lm-eval-gsm8k", model="m", score=0.5)
    tasks = [run_records.task(0, "gsm8k").model_copy(update={"output_dir": str(done), "state": "succeeded"}),
             run_records.task(1, "arc").model_copy(update={"output_dir": str(tmp_path / "x"), "state": "failed"})]
    record = run_records.run_record(tasks)
    store.create(record)
    outcome = export_run(record, ExportConfig.model_validate({"csv": {"path": "a.csv"}}), base_dir=tmp_path)
    assert outcome.exit_code == 0
    assert outcome.skipped == [f"run {record.id} task 1 (lm-eval.arc, failed): no {tmp_path / 'x' / 'results.yml'}"]
    table = list(csv.DictReader(io.StringIO((tmp_path / "a.csv").read_text(encoding="utf-8"))))
    assert {row["run_id"] for row in table} == {record.id} and {row["model"] for row in table} == {"m"}
    code, _, err = evals(capsys, "export", record.id, "--to", "json", "--json_path", "-")
    assert code == 0 and "not exported: run" in err


def test_a_failing_target_never_stops_the_others_and_says_how_to_retry(suite: Path, tmp_path: Path) -> None:
    def down(tasks: list[TaskExport], config: ExportConfig, *, base_dir: Path) -> str:
        raise ConnectionRefusedError(111, "Connection refused")

    after: list[int] = []

    def offline(tasks: list[TaskExport], config: ExportConfig, *, base_dir: Path) -> str:
        after.append(len(tasks))
        return "written"

    config = ExportConfig.model_validate({"csv": {"path": "s.csv"}, "wandb": {"project": "p"}, "mlflow": {
        "tracking_uri": "http://127.0.0.1:9", "experiment": "rel", "tags": {"team": "eval"}}})
    outcome = export_run([str(suite)], config, base_dir=tmp_path,
                         exporters={"csv": export_csv, "mlflow": down, "wandb": offline})
    assert outcome.exit_code == 1
    assert (tmp_path / "s.csv").is_file() and after == [2]  # the target after the failed one ran too
    ok, failed, last = outcome.targets
    assert ok.ok and last.ok and not failed.ok
    assert failed.message == "ConnectionRefusedError: [Errno 111] Connection refused"
    assert failed.retry == shlex.join(["evals", "export", str(suite), "--to", "mlflow", "--mlflow_uri",
                                       "http://127.0.0.1:9", "--mlflow_experiment", "rel", "--mlflow_tag", "team=eval"])
    assert outcome.lines()[1] == f"export to mlflow failed: {failed.message}; retry: {failed.retry}"


def test_a_missing_package_says_what_to_install(suite: Path, tmp_path: Path) -> None:
    def missing(tasks: list[TaskExport], config: ExportConfig, *, base_dir: Path) -> str:
        raise ModuleNotFoundError("No module named 'wandb'", name="wandb")

    outcome = export_run([str(suite)], ExportConfig.model_validate({"wandb": {"project": "p"}}), base_dir=tmp_path,
                         exporters={"wandb": missing})
    assert outcome.targets[0].message == "the wandb package is not installed (pip install 'evals-orchestrator[export]')"


def test_the_retry_command_rebuilds_the_same_settings(tmp_path: Path) -> None:
    config = ExportConfig.model_validate({
        "mlflow": {"tracking_uri": "http://h:5000", "run_name": "{model} {task}", "tags": {"a": "1", "b": "x y"},
                   "token_name": "MY_TOKEN"},
        "wandb": {"project": "p", "entity": "e", "mode": "online", "dir": "w", "api_key_name": "K"},
        "csv": {"path": "c.csv"}, "json": {"path": "j.json"}})
    for name in config.names:
        args = shlex.split(retry_command(["RUN"], name, config, base_dir=tmp_path))
        assert args[:5] == ["evals", "export", "RUN", "--to", name]
        flags: dict[str, object] = {}
        for flag, value in zip(args[5::2], args[6::2], strict=True):
            assert flag in FLAGS[name].values()
            flags[flag] = [*flags.get(flag, []), value] if flag == "--mlflow_tag" else value  # type: ignore[misc]
        rebuilt = build_config(base=None, to=[name], flags=flags, default_stem="x")
        expected = config.only([name])
        if name in ("csv", "json", "wandb"):  # paths come back absolute
            section = getattr(expected, "json_file" if name == "json" else name)
            key = "dir" if name == "wandb" else "path"
            setattr(section, key, str(tmp_path / getattr(section, key)))
        assert rebuilt == expected


@pytest.mark.parametrize(("args", "message"), [
    (["--to", "mlfow"], "--to mlfow: no such target; did you mean mlflow?"),
    (["--to", "csv", "--mlflow_uri", "http://h"], "--mlflow_uri is a setting of the mlflow target, which is not "
                                                   "exported"),
    ([], "no target"),
    (["--to", "wandb"], "wandb.project"),
    (["--to", "mlflow", "--mlflow_tag", "novalue"], "--mlflow_tag 'novalue': expected KEY=VALUE"),
    (["--to", "mlflow", "--mlflow_run_name", "{model}-{date}"], "unknown field {date}"),
    (["--to", "mlflow"], "mlflow: no tracking URI"),
    (["--to", "mlflow", "--mlflow_uri", "http://h", "--mlflow_token_name", "UNSET_TOKEN_VAR"],
     "mlflow: the token variable UNSET_TOKEN_VAR is not set"),
    (["--to", "wandb", "--wandb_project", "p", "--wandb_mode", "online", "--wandb_api_key_name", "UNSET_KEY_VAR"],
     "wandb: online needs the API key in UNSET_KEY_VAR"),
])
def test_bad_settings_are_one_line_and_exit_2(args: list[str], message: str, *, suite: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    code, _, err = evals(capsys, "export", str(suite), *args)
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.csv"))


def test_a_secret_is_never_a_setting() -> None:
    with pytest.raises(ValidationError, match="token_name"):
        ExportConfig.model_validate({"mlflow": {"token_name": "dapi0123-not-a-name"}})
    with pytest.raises(ValidationError, match="Extra inputs"):
        ExportConfig.model_validate({"wandb": {"project": "p", "api_key": "0123"}})


def test_a_config_file_is_narrowed_by_to_and_overridden_by_flags(suite: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    settings = tmp_path / "export.yml"
    settings.write_text("csv: {path: from-file.csv}\njson: {path: from-file.json}\n", encoding="utf-8")
    code, _, err = evals(capsys, "export", str(suite), "--config", str(settings), "--to", "csv",
                         "--csv_path", str(tmp_path / "flag.csv"))
    assert code == 0, err
    assert (tmp_path / "flag.csv").is_file() and not (tmp_path / "from-file.json").exists()
    settings.write_text("csv: {path: a.csv}\nsheets: {}\n", encoding="utf-8")
    code, _, err = evals(capsys, "export", str(suite), "--config", str(settings))
    assert code == 2 and f"{settings}:2" in err


@pytest.mark.parametrize("source", ["no-such-run", "/no/such/dir"])
def test_a_missing_run_is_bad_input(source: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = evals(capsys, "export", source, "--to", "csv")
    assert code == 2 and ("no run 'no-such-run'" in err or "is no run id, output directory" in err)


def test_a_directory_without_results_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(InputError, match=r"holds no results\.yml"):
        gather([str(tmp_path / "empty")])

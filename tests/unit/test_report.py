"""`evals report` on recorded output directories: what the page holds, how it is escaped, the CLI's refusals."""

from __future__ import annotations

import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from orchestrator.host.cli import app as cli
from orchestrator.host.records import store
from orchestrator.host.report import browser, page
from orchestrator.host.report.browser import flipped, script_json
from orchestrator.host.report.gather import gather
from orchestrator.host.report.tables import usage_of
from orchestrator.schema.loading import dump_yaml, load_model
from orchestrator.schema.results import ResultsFile
from tests.unit import records as run_records
from tests.unit.report_runs import HOSTILE, IMAGE, MODELS, SAMPLES, SCRIPT, TASKS, write_output_dir, write_suite
from tests.unit.sample_runs import records


class Elements(HTMLParser):
    """Counts of each start tag, and the text of every script element."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.scripts: list[str] = []
        self.handlers: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        self._in_script = tag == "script"
        if tag == "script":
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False if tag == "script" else self._in_script

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data


def parsed(html: str) -> Elements:
    found = Elements()
    found.feed(html)
    return found


def samples_data(html: str) -> dict[str, object]:
    match = re.search(r'<script type="application/json" id="samples-data">(.*?)</script>', html, re.S)
    assert match is not None
    data: dict[str, object] = json.loads(match.group(1))
    return data


def test_a_suite_folder_gives_scores_charts_compare_samples_usage_and_provenance(tmp_path: Path) -> None:
    html = page.build([str(write_suite(tmp_path / "suite"))])
    for model in MODELS:
        assert f"<th>{model}</th>" in html
    assert html.count('<figure class="chart" data-task=') == len(TASKS)
    assert parsed(html).tags["svg"] == 3 * len(TASKS)  # scores, latency, tokens per task
    assert "[0.5100, 0.6900]" in html  # model-a's CI from results.yml
    assert "model-b vs model-a (baseline)" in html and "McNemar" in html
    assert "sha256:" + "ab" * 32 in html and "evals/lm-eval:model-b" in html
    data = samples_data(html)
    assert data["models"] == list(MODELS)
    tasks = data["tasks"]
    assert isinstance(tasks, list) and [task["task"] for task in tasks] == sorted(TASKS)
    rows = tasks[0]["rows"]
    assert len(rows) == SAMPLES and tasks[0]["total"] == SAMPLES
    assert sum(row[4] for row in rows) > 0  # flipped samples
    assert sum(1 for row in rows if row[5][1][0] == "error") == 3


def test_model_outputs_and_names_cannot_become_markup(tmp_path: Path) -> None:
    directory = write_output_dir(tmp_path / "a", model=0, task=0)
    document = load_model(ResultsFile, directory / "results.yml")
    document.target.api_endpoint.model_id = IMAGE
    (directory / "results.yml").write_text(dump_yaml(document.model_dump(mode="json")), encoding="utf-8")
    write_output_dir(tmp_path / "b", model=1, task=0)
    html = page.build([str(tmp_path)])
    assert SCRIPT not in html and IMAGE not in html and "<img" not in html
    elements = parsed(html)
    assert elements.tags["script"] == 2 and elements.handlers == []  # the data and the page's own script
    rows = samples_data(html)["tasks"][0]["rows"]  # type: ignore[index]
    assert rows[0][5][0][2] == HOSTILE  # still shown, as text
    assert "&lt;img src=x onerror=" in html  # the model's name, escaped in the tables and the charts


def test_usage_is_the_models_requests_only(tmp_path: Path) -> None:
    outputs = gather([str(write_suite(tmp_path / "suite"))])
    by_model = {output.model: usage_of(output) for output in outputs if output.tasks == [TASKS[0]]}
    a, b = by_model[MODELS[0]], by_model[MODELS[1]]
    assert (a.requests, a.failed, len(a.latencies_ms)) == (SAMPLES, 0, SAMPLES)  # the judge's request left out
    assert (b.requests, b.failed, len(b.latencies_ms)) == (SAMPLES, 3, SAMPLES - 3)
    assert a.prompt_tokens == sum(40 + i % 9 for i in range(SAMPLES))
    assert b.percentiles != "n/a" and a.percentiles.count(" / ") == 1


def test_script_json_cannot_close_its_element() -> None:
    text = script_json({"x": "</script><!-- & \u2028"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"x": "</script><!-- & \u2028"}


def test_flipped_means_a_0_1_score_differs_between_models() -> None:
    a, b, c = (records("t", [score])[0] for score in (1, 0, 1))
    error = records("t", [0], statuses=["error"])[0]
    assert flipped({"a": a, "b": b})
    assert not flipped({"a": a, "c": c})
    assert not flipped({"a": a, "e": error})
    continuous = records("t", [0.5])[0]
    assert not flipped({"a": a, "x": continuous})


def test_samples_past_the_cap_are_counted_not_embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(browser, "MAX_SAMPLES", 7)
    html = page.build([str(write_output_dir(tmp_path / "a", model=0, task=0))])
    task = samples_data(html)["tasks"][0]  # type: ignore[index]
    assert (len(task["rows"]), task["total"]) == (7, SAMPLES)
    assert f"{SAMPLES} samples, the first 7 shown" in html


def test_a_run_id_names_its_tasks_and_two_runs_of_one_model_are_told_apart(tmp_path: Path) -> None:
    record = run_records.run_record([run_records.task(0, "gsm8k", output_root=str(tmp_path / "run")),
                                     run_records.task(1, "arc_easy", output_root=str(tmp_path / "run"))])
    write_output_dir(Path(record.tasks[0].output_dir), model=0, task=0)
    write_output_dir(Path(record.tasks[1].output_dir), model=0, task=1)
    store.create(record)
    other = write_suite(tmp_path / "suite") / "model-a"
    outputs = gather([record.id, str(other)])
    assert {output.model for output in outputs} == {f"model-a ({record.id})", f"model-a ({other})"}
    assert outputs[0].run is not None and outputs[0].record is not None
    html = page.build([record.id, str(other)], baseline=f"model-a ({other})")
    assert f"model-a ({record.id}) vs model-a ({other}) (baseline)" in html
    assert f"<code>{record.id}</code>" in html and "config:\n  type: gsm8k" in html  # provenance, resolved config


def evals(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_writes_the_page_and_prints_its_path(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    suite = write_suite(tmp_path / "suite")
    monkeypatch.chdir(tmp_path)
    code, out, err = evals(capsys, "report", str(suite))
    assert (code, err) == (0, "")
    assert out == "report-suite.html\n" and (tmp_path / "report-suite.html").read_text().startswith("<!DOCTYPE html>")
    assert (tmp_path / "report-suite.html").stat().st_mode & 0o044  # readable by others, as a new file is
    code, out, _ = evals(capsys, "report", str(suite / "model-b"), "-o", str(tmp_path / "b.html"))
    assert (code, out) == (0, f"{tmp_path / 'b.html'}\n")


def test_bad_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(tmp_path / "suite")
    empty = tmp_path / "empty"
    empty.mkdir()
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    cases = [(["report", "20990101-000000-0001"], "no run '20990101-000000-0001'"),
             (["report", str(empty)], "holds no results.yml"),
             (["report", str(tmp_path / "nowhere")], "is no run id, output directory or results.yml"),
             (["report", str(suite), "-o", str(tmp_path / "no" / "r.html")], "no directory"),
             (["report", str(suite), "-o", str(tmp_path)], "is a directory"),
             (["report", str(suite), "--baseline", "model-c"], "--baseline 'model-c' is none of the report's")]
    if os.geteuid() != 0:  # root writes anywhere
        cases.append((["report", str(suite), "-o", str(locked / "r.html")], "is not writable"))
    for args, message in cases:
        code, out, err = evals(capsys, *args)
        assert (code, out) == (2, ""), args
        assert err.count("\n") == 1 and message in err, err
    (suite / "model-a" / "lm-eval-gsm8k" / "samples.jsonl").write_text("{not json\n", encoding="utf-8")
    code, _, err = evals(capsys, "report", str(suite), "-o", str(tmp_path / "r.html"))
    assert code == 2 and "samples.jsonl:1: not a JSON record" in err
    assert not (tmp_path / "r.html").exists()


def test_a_suite_root_with_its_summary_names_the_suites_models(tmp_path: Path) -> None:
    root = write_suite(tmp_path / "suite")
    pairs = [{"index": i, "model": f"suite-{model}", "task": task, "harness": "lm-eval", "state": "succeeded",
              "output_dir": str(root / model / f"lm-eval-{task}"), "resolved_config": "run_config.yml",
              "image": "evals/lm-eval:latest", "log": "task.log"}
             for i, (model, task) in enumerate((m, t) for m in MODELS for t in TASKS)]
    (root / "summary.yml").write_text(dump_yaml({"run_id": "20261128-000000-0001", "suite": "s", "models": [
        f"suite-{m}" for m in MODELS], "written_at": "2026-11-28T00:00:00Z", "complete": True, "pairs": pairs}))
    assert {entry.model for entry in gather([str(root)])} == {f"suite-{model}" for model in MODELS}
    (root / "summary.yml").write_text("not: [a summary")  # unreadable: the results' model ids, as before
    assert {entry.model for entry in gather([str(root)])} == set(MODELS)

"""Targeted tests of hostile input on the host side: bounded YAML/JSON, run ids and their directories, Slurm
filename patterns, image names, and names from files shown literally. The corpus of cases is in
test_hostile_corpus_host.py; these pin the limits, the timing and the behaviour around them."""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path

import pytest

from orchestrator.host.backends.slurm.commands import SlurmCli
from orchestrator.host.backends.slurm.executor import SlurmExecutor
from orchestrator.host.backends.slurm.script import log_pattern, render_batch_script, task_log
from orchestrator.host.catalog import check_image_name, from_labels
from orchestrator.host.cli import app as host_cli
from orchestrator.host.cli.services import HostServices
from orchestrator.host.records import store
from orchestrator.schema.config import RunConfigLayer
from orchestrator.schema.container import LABEL_FRAMEWORK, LABEL_HARNESS
from orchestrator.schema.errors import ConfigError, InputError, printable
from orchestrator.schema.limits import CONFIG_LIMITS, MIB, RECORD_LIMITS, RESULTS_LIMITS, LimitError, Limits
from orchestrator.schema.loading import load_model, parse_yaml
from orchestrator.schema.record import RUN_ID
from orchestrator.schema.slurm import SlurmConfig
from tests.doubles.slurm import FakeSlurm
from tests.unit.records import RUN_ID as SAMPLE_ID
from tests.unit.records import run_record, slurm_record, task
from tests.unit.test_host_cli import RESULTS
from tests.unit.test_hostile_corpus_host import (
    EXTRA,
    fakes,  # noqa: F401 (a fixture)
    flow_laughs,
    host_run,
    laughs,
    put,
    put_record,
    record_text,
    record_with_task,
    run_cli,
    runtime_args,
    services,  # noqa: F401 (a fixture)
    snapshot,
)

# ---- bounded YAML -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["runtime run config", "host show", "host overrides"])
def test_a_billion_laughs_of_a_few_hundred_bytes_is_refused_in_well_under_a_second(
        kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], services: HostServices) -> None:  # noqa: F811
    bomb = laughs()
    assert len(bomb.encode()) < 500  # 9^9 strings
    if kind == "runtime run config":
        config = put(tmp_path, "run.yml", EXTRA + laughs("      "))
        cli, argv = "runtime", runtime_args(tmp_path, "--run_config", config)
    elif kind == "host show":
        cli, argv = "host", ["show", put(tmp_path, "results.yml", bomb)]
    else:
        cli, argv = "host", host_run(tmp_path, "--overrides", f"config.params.extra.x={flow_laughs()}")
    started = time.monotonic()
    code, _, err = run_cli(cli, argv, capsys, services)  # type: ignore[arg-type]
    assert time.monotonic() - started < 0.5
    assert code == 2 and "expands to more than" in err and len(err.strip().splitlines()) == 1


def test_the_stated_limits() -> None:
    assert (CONFIG_LIMITS.max_bytes, CONFIG_LIMITS.max_nodes, CONFIG_LIMITS.max_depth) == (MIB, 100_000, 64)
    assert (RECORD_LIMITS.max_bytes, RECORD_LIMITS.max_nodes) == (4 * MIB, 250_000)
    assert (RESULTS_LIMITS.max_bytes, RESULTS_LIMITS.max_nodes) == (4 * MIB, 250_000)


def test_a_run_config_of_exactly_the_limit_is_read_and_one_byte_more_is_not(tmp_path: Path) -> None:
    body = "config:\n  type: gsm8k\n"
    path = tmp_path / "run.yml"
    path.write_text(body + "#" * (MIB - len(body) - 1) + "\n")
    assert path.stat().st_size == MIB
    assert load_model(RunConfigLayer, path).config.type == "gsm8k"  # type: ignore[union-attr]
    path.write_text(body + "#" * (MIB - len(body)) + "\n")
    with pytest.raises(LimitError, match=r"run.yml: larger than 1 MiB, the limit for a config file"):
        load_model(RunConfigLayer, path)


def test_aliases_within_the_limit_are_still_yaml() -> None:
    """Anchors, aliases and merge keys people write on purpose keep working; each use counts."""
    text = ("base: &base {temperature: 0.0, max_retries: 3}\n"
            "a: {<<: *base, top_p: 1.0}\n"
            "b: [*base, *base]\n")
    data = parse_yaml(text, source="x.yml").data
    assert data["a"] == {"temperature": 0.0, "max_retries": 3, "top_p": 1.0} and data["b"][1]["max_retries"] == 3
    small = Limits("test file", max_bytes=1000, max_nodes=13)
    parse_yaml("a: &a [1, 2]\nb: [*a, *a]\n", source="x.yml", limits=small)  # 1 + (1 + 3) + (1 + 1 + 3 + 3) nodes
    with pytest.raises(LimitError, match=r"x\.yml:1: expands to more than 13 nodes"):
        parse_yaml("a: &a [1, 2]\nb: [*a, *a]\nc: *a\n", source="x.yml", limits=small)


def test_recursive_aliases_name_the_line() -> None:
    with pytest.raises(LimitError, match=r"x.yml:4: recursive alias \*loop"):
        parse_yaml("a: 1\nb:\n  c: &loop\n    - *loop\n", source="x.yml")


def test_non_utf8_names_the_file_and_the_line_of_the_first_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "run.yml"
    path.write_bytes(b"config:\n  type: gsm8k\n  params:\n    extra: {name: caf\xe9}\n")
    with pytest.raises(ConfigError) as caught:
        load_model(RunConfigLayer, path)
    assert str(caught.value).startswith(f"{path}:4: not UTF-8 text (byte 0xe9")
    assert caught.value.exit_code == 2


def test_framework_label_that_is_not_utf8_is_refused_in_one_line() -> None:
    """Images carry framework.yml in a label: its bytes are decoded like a file's."""
    labels = {LABEL_HARNESS: "x", LABEL_FRAMEWORK: base64.b64encode(b"framework:\n  name: \xff\n").decode()}
    with pytest.raises(ConfigError, match=r"^evals/x:1 \(evals.framework\):2: not UTF-8"):
        from_labels("evals/x:1", labels)


def test_a_results_file_over_the_config_limit_is_within_its_own(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Results files have their own, larger limit: a 2 MiB results.yml (long provenance) is shown."""
    path = tmp_path / "results.yml"
    path.write_text(RESULTS.read_text() + "# " + "x" * (2 * MIB) + "\n")
    assert host_cli.main(["show", str(path)]) == 0
    assert "exact_match__strict-match" in capsys.readouterr().out


# ---- run ids and their directories --------------------------------------------------------------------------------


def test_generated_run_ids_are_run_ids() -> None:
    run_id = store.new_run_id()
    assert RUN_ID.fullmatch(run_id) and store.record_dir(run_id).parent == store.runs_dir()


@pytest.mark.parametrize("run_id", ["../x", "a/b", "..", ".", "", "x" * 65, "/abs", "a\x00b", "a\nb", ".x", "a b",
                                    "x/..", "\u202e1"])
def test_a_run_id_that_is_not_one_never_becomes_a_path(run_id: str) -> None:
    with pytest.raises(InputError, match="not a run id") as caught:
        store.record_dir(run_id)
    assert "\n" not in str(caught.value) and "\x00" not in str(caught.value)


def test_a_run_directory_that_is_a_link_out_of_the_state_directory_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    store.runs_dir().mkdir(parents=True)
    (store.runs_dir() / SAMPLE_ID).symlink_to(outside)
    with pytest.raises(InputError, match="leads outside"):
        store.save(run_record([task(0, "gsm8k_sample")]))
    assert list(outside.iterdir()) == []


def test_a_record_must_name_the_run_of_its_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    put_record(tmp_path, record_text(id="20990101-000000-0002"))
    assert host_cli.main(["status", SAMPLE_ID]) == 2
    assert "is of run '20990101-000000-0002'" in capsys.readouterr().err


def test_runs_lists_the_good_records_and_warns_once_per_bad_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  services: HostServices) -> None:  # noqa: F811
    put_record(tmp_path, record_text())
    put_record(tmp_path, "tasks: [\n", run_id="20260101-000000-0002")
    (store.runs_dir() / "README").write_text("my notes\n")
    code, out, err = run_cli("host", ["runs"], capsys, services)
    assert code == 0
    assert SAMPLE_ID in out and "gsm8k_sample: failed" in out and "20260101-000000-0002" not in out
    warnings = err.strip().splitlines()
    assert len(warnings) == 2 and all(line.startswith("evals: warning: skipped ") for line in warnings)
    assert "run 20260101-000000-0002: unreadable record" in err and "'README'" in err


def test_status_without_an_id_names_a_damaged_latest_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    put_record(tmp_path, record_text())
    put_record(tmp_path, "id: [\n", run_id="20260101-000000-0002")
    assert host_cli.main(["status"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("evals: error: run 20260101-000000-0002: unreadable record ") and err.count("\n") == 1


# ---- names from files, shown literally -----------------------------------------------------------------------------


def test_show_prints_markup_and_escape_sequences_in_names_literally(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    text = RESULTS.read_text().replace("    gsm8k:\n", '    "[bold]\\e[2J\\u202e:smile:":\n')
    code, out, _ = run_cli("host", ["show", put(tmp_path, "results.yml", text)], capsys)
    assert code == 0
    assert "[bold]\\x1b[2J\\u202e:smile:" in out
    assert "\x1b" not in out and "\u202e" not in out and "😄" not in out


def test_status_shows_a_task_name_literally(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    put_record(tmp_path, record_with_task(task="[/]x\x1b[31m", reason="[red]boom\x07"))
    code, out, err = run_cli("host", ["status", SAMPLE_ID], capsys)
    assert code == 0
    assert "lm-eval.[/]x\\x1b[31m" in out and "[red]boom\\x07" in err
    assert "\x1b" not in out + err and "\x07" not in out + err


def test_printable_keeps_one_line_and_shows_what_it_escaped() -> None:
    assert printable("plain ü text") == "plain ü text"
    assert printable("a\nb\r\x1b[2J\x00\u202e\t") == "a\\nb\\r\\x1b[2J\\x00\\u202e\\t"
    assert str(InputError("line\none", hint="x\x1b")) == "line\\none (x\\x1b)"


def test_a_run_into_an_output_dir_with_markup_does_not_crash(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             services: HostServices) -> None:  # noqa: F811
    argv = host_run(tmp_path)
    argv[argv.index("--output_dir") + 1] = str(tmp_path / "out[/]")
    _, _, err = run_cli("host", argv, capsys, services)  # the output dir is shown as it is, not read as rich markup
    assert f"-> {tmp_path / 'out[/]'}" in err  # (the fake container writes no results: that is not the point)
    assert "MarkupError" not in err and "Traceback" not in err


# ---- Slurm filename patterns ----------------------------------------------------------------------------------------


def sbatch_expands(pattern: str, *, index: int, job: str = "4242", user: str = "me") -> str:
    """What sbatch makes of an --output filename pattern (the replacement symbols of `man sbatch`)."""
    symbols = {"%": "%", "a": str(index), "A": job, "j": job, "J": job, "u": user, "x": "evals", "N": "node",
               "n": "0", "s": "batch", "t": "0"}
    return re.sub(r"%([%aAjJuxNnst])", lambda m: symbols[m.group(1)], pattern)


@pytest.mark.parametrize("run_dir", ["/shared/100%/run", "/shared/%j/%u/%x", "/shared/%%a", "/plain/dir"])
@pytest.mark.parametrize("array", [True, False])
def test_a_percent_in_the_run_directory_reaches_sbatch_escaped(run_dir: str, array: bool) -> None:
    pattern = log_pattern(run_dir, array=array)
    assert sbatch_expands(pattern, index=1 if array else 0) == task_log(run_dir, 1 if array else 0)
    script = render_batch_script(run_id=SAMPLE_ID, run_dir=run_dir,
                                 tasks=[task(i, f"t{i}") for i in range(2 if array else 1)], config=SlurmConfig())
    assert f"#SBATCH --output={pattern}\n" in script and f"run_dir={run_dir}\n" in script.replace("'", "")


def test_a_slurm_run_under_a_percent_directory_records_the_logs_slurm_writes(tmp_path: Path,
                                                                             capsys: pytest.CaptureFixture[str],
                                                                             services: HostServices  # noqa: F811
                                                                             ) -> None:
    root = tmp_path / "o%j"
    code, out, _ = run_cli("host", [*host_run(tmp_path, "--executor", "slurm", "--output_root", str(root)),
                                    "--dry_run"], capsys, services)
    assert code == 0
    output_line = next(line for line in out.splitlines() if line.startswith("#SBATCH --output="))
    assert output_line.startswith(f"#SBATCH --output={tmp_path}/o%%j/") and output_line.endswith("/logs/task-0.log")
    run_dir = next(line for line in out.splitlines() if line.startswith("run_dir="))
    assert run_dir.startswith(f"run_dir={tmp_path}/o%j/")


def test_a_garbled_exit_file_leaves_the_task_interrupted(tmp_path: Path) -> None:
    run_dir = tmp_path / "shared"
    record = run_record([task(0, "gsm8k_sample", output_root=str(run_dir))],
                        slurm=slurm_record(SlurmConfig(), run_dir=str(run_dir), count=1))
    record.tasks[0].job_id, record.tasks[0].state = "77", "running"
    store.record_dir(record.id).mkdir(parents=True)
    (run_dir / "exit").mkdir(parents=True)
    for content in (b"\xff\xfe\x00", b"--5\n", b"9" * 10_000):
        (run_dir / "exit" / "task-0.code").write_bytes(content)
        refreshed = SlurmExecutor(SlurmCli(FakeSlurm()), lambda: None).refresh(record.model_copy(deep=True))  # type: ignore[arg-type, return-value]
        assert refreshed.tasks[0].state == "interrupted"


# ---- image names ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["evals/lm-eval:latest", "ubuntu", "localhost:5000/evals/lm-eval:0.1.0",
                                  "registry.example.com/team/evals__x/lm-eval:v1.2_rc-3",
                                  f"evals/lm-eval@sha256:{'a' * 64}", "[::1]:5000/x:y", "Registry.Example/x"])
def test_image_names_of_the_docker_grammar_are_accepted(name: str) -> None:
    assert check_image_name(name) == name


@pytest.mark.parametrize("name", ["", "evals/../x", "evals/LM", "x:", "x::y", "-x", "x/", "/x", "x y", "x;id",
                                  "x\n", "x:" + "t" * 129, "a" * 256, "x@sha256:abc", "x@:" + "a" * 64, "é"])
def test_other_image_names_are_refused_before_the_engine_is_asked(name: str, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str],
                                                                   services: HostServices) -> None:  # noqa: F811
    with pytest.raises(InputError, match="is not an image name"):
        check_image_name(name)
    if name:
        before = snapshot(tmp_path)
        code, _, err = run_cli("host", host_run(tmp_path, "--image", name), capsys,
                               services)  # asking the engine would fail the test
        assert code == 2 and "is not an image name" in err and snapshot(tmp_path) == before

"""Hostile input to a run: every key a config names is forwarded by name, checked and masked; the dry run and the
run refuse the same things, with one line and exit 2, before anything is written (a corpus of cases, run both
ways through the runtime CLI, in-process)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.host.cli import app as host_cli
from orchestrator.runtime import cli as runtime_cli
from orchestrator.runtime.proxy.adjust import MASKED_VARS, BodyLog, masked_values
from orchestrator.schema.adapter import LoggingConfig
from orchestrator.schema.sanity import MAX_COMMAND_BYTES
from tests.doubles.launcher import FakeLauncher
from tests.doubles.services import fake_services
from tests.unit.evals_app import Evals
from tests.unit.test_host_cli import IMAGES, write_results

REPO = Path(__file__).resolve().parents[2]
FAKE = REPO / "tests" / "fixtures" / "frameworks" / "fake-lm-eval" / "framework.yml"
LM_EVAL = REPO / "images" / "lm-eval" / "framework.yml"
VLM = REPO / "images" / "vlmevalkit" / "framework.yml"
URL = "http://localhost:8000/v1/chat/completions"
JUDGE = {"config": {"params": {"extra": {"judge": {"model": "j", "url": URL, "api_key": "JUDGE_KEY"}}}}}


def fake_framework(tmp_path: Path) -> Path:
    """Where an edited copy of the fake framework goes: a harness folder of its own, with the fake's parser."""
    folder = tmp_path / FAKE.parent.name
    folder.mkdir()
    shutil.copy(FAKE.parent / "parse_fake_lm_eval.py", folder)
    return folder / "framework.yml"


def runtime(tmp_path: Path, *args: str, framework: Path = FAKE, doc: dict[str, Any] | None = None,
            dry_run: bool = False) -> tuple[int, Path]:
    """run_eval in-process; returns the exit code and the output dir (which must not exist after bad input)."""
    out = tmp_path / "out"
    argv = ["--framework", str(framework), "run_eval", "--model_type", "chat", *args]
    given = {argv[i] for i in range(len(argv)) if argv[i].startswith("--")}
    if "--output_dir" not in given:
        argv += ["--output_dir", str(out)]
    if "--eval_type" not in given:
        argv += ["--eval_type", "gsm8k"]
    if "--model_id" not in given and not (doc or {}).get("target"):
        argv += ["--model_id", "m"]
    if "--model_url" not in given:
        argv += ["--model_url", URL]
    if doc is not None:
        (tmp_path / "run.yml").write_text(yaml.safe_dump(doc, allow_unicode=True))
        argv += ["--run_config", str(tmp_path / "run.yml")]
    return runtime_cli.main([*argv, *(["--dry_run"] if dry_run else [])]), out


# ---- keys: named anywhere, forwarded by name, checked, masked ------------------------------------------


def test_a_judge_key_is_checked_before_anything_is_written_and_masked_in_the_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    framework = fake_framework(tmp_path)
    text = FAKE.read_text().replace("  command: |-\n    python3", "  command: |-\n    echo \"judge key: $JUDGE_KEY\";"
                                    " python3")
    text = text.replace("script: tests/", f"script: {REPO}/tests/")
    framework.write_text(text)
    monkeypatch.delenv("JUDGE_KEY", raising=False)
    code, out = runtime(tmp_path, framework=framework, doc=JUDGE)
    assert code == 2 and not out.exists()
    err = capsys.readouterr().err
    assert "environment variable JUDGE_KEY (named by config.params.extra.judge.api_key) is not set" in err
    monkeypatch.setenv("JUDGE_KEY", "judge-secret-0042")
    code, out = runtime(tmp_path, framework=framework, doc=JUDGE)
    assert code == 0, capsys.readouterr().err
    log = (out / "logs" / "harness.log").read_text()
    assert "judge key: ***" in log and "judge-secret-0042" not in log
    assert "judge-secret-0042" not in capsys.readouterr().out


def test_evals_run_forwards_every_key_by_name_and_checks_it_on_the_host(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    launcher = FakeLauncher(behaviour=write_results)
    evals = Evals(fake_services(images=IMAGES, launcher=launcher))
    (tmp_path / "run.yml").write_text(yaml.safe_dump(JUDGE))
    args = ["run", "--eval_type", "gsm8k", "--model_id", "m", "--model_url", URL, "--model_type", "chat",
            "--api_key_name", "EP_KEY", "--run_config", str(tmp_path / "run.yml")]
    monkeypatch.setenv("EP_KEY", "endpoint-secret-1")
    monkeypatch.delenv("JUDGE_KEY", raising=False)
    assert evals.main([*args, "--output_dir", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "JUDGE_KEY (named by config.params.extra.judge.api_key) is not set" in err
    assert len(err.strip().splitlines()) == 1 and launcher.launched == [] and not (tmp_path / "a").exists()
    monkeypatch.setenv("JUDGE_KEY", "judge-secret-2")
    code, _, err = evals(*args, "--output_dir", str(tmp_path / "b"))
    assert code == 0, err
    spec = launcher.launched[0]
    assert spec.secret_envs[:2] == ["EP_KEY", "JUDGE_KEY"]
    assert "judge-secret-2" not in repr(spec) and "endpoint-secret-1" not in repr(spec)


@pytest.mark.parametrize("value", ["sk-live-0123456789abcdef", "nvapi-XYZ/abc+def==", "has space", "1STARTS_DIGIT",
                                   "ghp_" + "a" * 36 + "-"])
def test_a_key_where_a_name_belongs_is_refused_without_echoing_it(
        value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args, doc in ((["--api_key_name", value], None),
                      ([], {"config": {"params": {"extra": {"judge": {"api_key": value}}}}}),
                      ([], {"config": {"params": {"extra": {"simulator": {"user_api_key": value}}}}}),
                      ([], {"target": {"api_endpoint": {"model_id": "m", "api_key": value}}})):
        code, out = runtime(tmp_path, *args, doc=doc, dry_run=True)
        captured = capsys.readouterr()
        assert code == 2 and not out.exists()
        assert value not in captured.err + captured.out
        assert "not shown" in captured.err and len(captured.err.strip().splitlines()) == 1


def test_body_logs_never_hold_a_known_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MASKED_VARS, "EP_KEY,JUDGE_KEY,HF_TOKEN,SHORT")
    monkeypatch.setenv("EP_KEY", "sk-endpoint-77")
    monkeypatch.setenv("JUDGE_KEY", "judge-77")
    monkeypatch.setenv("SHORT", "abc")  # under 4 characters: not masked (it would mask ordinary text)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert masked_values() == [b"sk-endpoint-77", b"judge-77"]
    log = BodyLog(tmp_path / "bodies.jsonl", LoggingConfig(), secrets=masked_values())
    echoed = b'{"error": "invalid key Bearer sk-endpoint-77", "judge": "judge-77", "abc": 1}'
    log.write("model0-mh3k2a9b-r1", echoed, status=401)
    record = json.loads((tmp_path / "bodies.jsonl").read_text())
    assert record["body"] == '{"error": "invalid key Bearer ***", "judge": "***", "abc": 1}'


# ---- the corpus: the dry run and the run refuse the same input ----------------------------------------------

CORPUS: list[tuple[str, list[str], dict[str, Any] | None, str]] = [
    ("nul in model id", [], {"target": {"api_endpoint": {"model_id": "m\x00x"}}}, "contains a NUL byte"),
    ("nul in extra", [], {"config": {"params": {"extra": {"system_instruction": "a\x00b"}}}}, "contains a NUL byte"),
    ("nul in a nested list", [], {"config": {"params": {"extra": {"args": ["--a", "b\x00"]}}}}, "NUL byte"),
    ("nul in a key of extra", [], {"config": {"params": {"extra": {"a\x00b": 1}}}}, "NUL byte"),
    ("empty model id", ["--model_id", ""], None, "model_id: must not be empty"),
    ("blank model id", ["--model_id", "   "], None, "model_id: must not be empty"),
    ("model id ..", ["--model_id", ".."], None, "path segment"),
    ("model id x/..", ["--model_id", "x/.."], None, "path segment"),
    ("model id a/./b", ["--model_id", "a/./b"], None, "path segment"),
    ("model id ../../etc", ["--model_id", "../../etc"], None, "path segment"),
    ("empty output dir", ["--output_dir", ""], None, "output_dir"),
    ("blank output dir", ["--output_dir", "  "], None, "output_dir"),
    ("port out of range", ["--model_url", "http://localhost:99999/v1/chat/completions"], None, "port"),
    ("port 65536", ["--model_url", "http://localhost:65536/v1/chat/completions"], None, "port"),
    ("port not a number", ["--model_url", "http://localhost:abc/v1/chat/completions"], None, "port"),
    ("port negative", ["--model_url", "http://localhost:-1/v1/chat/completions"], None, "port"),
    ("url without host", ["--model_url", "http:///v1/chat/completions"], None, "not an http(s) URL"),
    ("url ftp", ["--model_url", "ftp://localhost/v1"], None, "not an http(s) URL"),
    ("url with space", ["--model_url", "http://local host/v1"], None, "whitespace"),
    *[(f"inf {field}", ["--overrides", f"config.params.{field}=.inf"], None, "not a finite number")
      for field in ("temperature", "request_timeout")],
    *[(f"nan {field}", ["--overrides", f"config.params.{field}=.nan"], None, field)
      for field in ("temperature", "top_p", "request_timeout")],
    ("inf in extra", ["--overrides", "config.params.extra.seed=.inf"], None, "not a finite number"),
    ("-inf in extra list", [], {"config": {"params": {"extra": {"vals": [1, float("-inf")]}}}}, "not a finite"),
    *[(f"bool {field}={value}", ["--overrides", f"config.params.{field}={value}"], None, "a boolean")
      for field in ("parallelism", "limit_samples", "max_new_tokens", "max_retries", "temperature", "top_p",
                    "request_timeout") for value in ("true", "false")],
    ("bool in run config", [], {"config": {"params": {"limit_samples": True}}}, "a boolean"),
    ("negative limit", ["--overrides", "config.params.limit_samples=-1"], None, "limit_samples"),
    ("zero parallelism", ["--overrides", "config.params.parallelism=0"], None, "parallelism"),
    ("top_p over 1", ["--overrides", "config.params.top_p=1.5"], None, "top_p"),
    ("string for a number", ["--overrides", "config.params.max_new_tokens=many"], None, "max_new_tokens"),
    ("list for a number", ["--overrides", "config.params.parallelism=[1,2]"], None, "parallelism"),
    ("unknown params key", ["--overrides", "config.params.temprature=0.5"], None, "unknown key"),
    ("unknown top key", [], {"confg": {}}, "unknown key"),
    ("unknown task", ["--eval_type", "gsm8kk"], None, "gsm8kk"),
    ("bad endpoint type", ["--model_type", "speech"], None, "speech"),
    ("key value as api_key_name", ["--api_key_name", "sk-0123456789"], None, "not shown"),
    ("key value as judge key", [], {"config": {"params": {"extra": {"judge": {"api_key": "sk-0123"}}}}},
     "not shown"),
    ("number as judge key", [], {"config": {"params": {"extra": {"judge": {"api_key": 12345}}}}}, "not shown"),
    ("list as judge key", [], {"config": {"params": {"extra": {"judge": {"api_key": ["A"]}}}}}, "not shown"),
    ("key in a list of extra", [], {"config": {"params": {"extra": {"judges": [{"api_key": "sk x"}]}}}},
     "config.params.extra.judges[0].api_key"),
    ("overrides without =", ["--overrides", "config.params.limit_samples"], None, "--overrides"),
    ("overrides empty key", ["--overrides", "=3"], None, "--overrides"),
    ("run config a list", [], [], "mapping"),  # type: ignore[list-item]
]


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "run"])
@pytest.mark.parametrize("case", CORPUS, ids=[case[0] for case in CORPUS])
def test_runtime_corpus(case: tuple[str, list[str], dict[str, Any] | None, str], dry_run: bool, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    name, args, doc, needle = case
    code, out = runtime(tmp_path, *args, doc=doc, dry_run=dry_run)
    captured = capsys.readouterr()
    assert code == 2, (name, captured.err)
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], (name, captured.err)
    assert "Traceback" not in captured.err + captured.out
    assert not out.exists()


LM_EVAL_CORPUS: list[tuple[str, dict[str, Any], str]] = [
    ("args as a string", {"config": {"params": {"extra": {"args": "--seed 1"}}}}, "must be a list"),
    ("args as a mapping", {"config": {"params": {"extra": {"args": {"seed": 1}}}}}, "must be a list"),
    ("a command over the argument limit", {"config": {"params": {"task": "x" * (MAX_COMMAND_BYTES + 10)}}},
     "limit of one argument"),
    ("a model id over the argument limit", {"target": {"api_endpoint": {"model_id": "m" * (MAX_COMMAND_BYTES + 1)}}},
     "limit of one argument"),
]


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "run"])
@pytest.mark.parametrize("case", LM_EVAL_CORPUS, ids=[case[0] for case in LM_EVAL_CORPUS])
def test_lm_eval_template_corpus(case: tuple[str, dict[str, Any], str], dry_run: bool, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    name, doc, needle = case
    code, out = runtime(tmp_path, framework=LM_EVAL, doc=doc, dry_run=dry_run)
    captured = capsys.readouterr()
    assert code == 2, (name, captured.err[-500:])
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and len(lines[0]) < 1000, (name, captured.err[-500:])
    assert not out.exists()


# ---- injection: values are data, never shell or template code ---------------------------------------------

INJECTIONS = [
    "$(touch {mark})", "`touch {mark}`", "; touch {mark}", "' ; touch {mark} ; '", '"; touch {mark}; "',
    "&& touch {mark}", "| touch {mark}", "\ntouch {mark}\n", "$(touch${{IFS}}{mark})", "x'$(touch {mark})'y",
    "{{{{ cycler.__init__.__globals__.os.system('touch {mark}') }}}}", "{{% raw %}}{{{{ 7*7 }}}}",
    "-- --help", "--output_path=/etc", "\\'; touch {mark}; \\'", "$'\\x3b' touch {mark}",
]


@pytest.mark.parametrize("where", ["model_id", "extra"])
@pytest.mark.parametrize("template", INJECTIONS, ids=[f"injection-{i}" for i in range(len(INJECTIONS))])
def test_injected_values_reach_the_harness_as_data(template: str, where: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    mark = tmp_path / "pwned"
    value = template.format(mark=mark)
    framework = fake_framework(tmp_path)
    framework.write_text(FAKE.read_text().replace(
        "  command: |-\n    python3",
        "  command: |-\n    printf '%s|%s\\n' {{ target.api_endpoint.model_id | shq }} "
        "{{ config.params.extra.get('note', '') | shq }};\n    python3",
    ).replace("script: tests/", f"script: {REPO}/tests/"))
    if where == "model_id" and "\n" in value:
        value = value.replace("\n", " ")  # a model id is one line (the endpoint gets it in JSON either way)
    doc = ({"target": {"api_endpoint": {"model_id": value}}} if where == "model_id"
           else {"config": {"params": {"extra": {"note": value}}}})
    for dry_run in (True, False):
        code, out = runtime(tmp_path, framework=framework, doc=doc, dry_run=dry_run)
        captured = capsys.readouterr()
        assert code == 0, captured.err[-2000:]
        assert not mark.exists(), value
    log = (out / "logs" / "harness.log").read_text()
    expected = f"{value}|" if where == "model_id" else f"m|{value}"
    assert expected in log, (expected, log[:500])


def test_a_nul_byte_in_a_slurm_config_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "slurm.yml").write_text('sbatch_extra: ["--comment=a\\0b"]\n')
    code = host_cli.main(["run", "--executor", "slurm", "--slurm_config", str(tmp_path / "slurm.yml"), "--eval_type",
                          "gsm8k", "--model_id", "m", "--model_url", URL, "--model_type", "chat", "--dry_run"])
    err = capsys.readouterr().err
    assert code == 2 and "slurm.sbatch_extra[0]: contains a NUL byte" in err and len(err.strip().splitlines()) == 1

"""A corpus of hostile input to the host CLI (`evals`) and the runtime CLI (`python -m orchestrator.runtime`).

Each case builds its files under the test's directory, runs one command in-process and states the exit code.
Every case asserts what a user would notice: no traceback (an exception escaping the CLI fails the case), a
refusal is ONE line on stderr, no terminal escape sequence reaches the output, and nothing was written (the
whole test directory, the state directory with its run records and the output dirs included, is unchanged).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from orchestrator.host.backends.local.executor import LocalExecutor
from orchestrator.host.backends.slurm.commands import SlurmCli
from orchestrator.host.backends.slurm.executor import SlurmExecutor
from orchestrator.host.cli import app as host_cli
from orchestrator.host.cli.services import HostServices
from orchestrator.runtime import cli as runtime_cli
from orchestrator.schema.loading import dump_yaml
from orchestrator.schema.record import RunRecord
from tests.doubles.launcher import FakeLauncher
from tests.doubles.services import fake_services
from tests.doubles.slurm import FakeSlurm
from tests.unit.records import RUN_ID, run_record, task
from tests.unit.test_host_cli import IMAGES, RESULTS, URL

REPO = Path(__file__).resolve().parents[2]
LM_EVAL = REPO / "images" / "lm-eval" / "framework.yml"
VLM = REPO / "images" / "vlmevalkit" / "framework.yml"
FAKE = REPO / "tests" / "fixtures" / "frameworks" / "fake-lm-eval" / "framework.yml"
MIB = 1024 * 1024

Build = Callable[[Path], list[str]]


# ---- hostile material ---------------------------------------------------------------------------------------------


def laughs(indent: str = "", levels: int = 9) -> str:
    """A 'billion laughs' block: level k is 9 aliases of level k-1 (9^levels strings), a few hundred bytes."""
    lines = [f"{indent}l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"{indent}l{k}: &l{k} [{', '.join([f'*l{k - 1}'] * 9)}]" for k in range(1, levels)]
    return "\n".join(lines) + "\n"


def flow_laughs(levels: int = 10) -> str:
    """The same bomb as one flow sequence (fits into an --overrides value)."""
    items = ["&a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    items += [f"&a{k} [{', '.join([f'*a{k - 1}'] * 9)}]" for k in range(1, levels)]
    return "[" + ", ".join(items) + "]"


EXTRA = "config:\n  params:\n    extra:\n"
RUN_CONFIG_BOMB = EXTRA + laughs("      ")
DEEP_FLOW = "config: {params: {extra: {x: " + "[" * 5000 + "]" * 5000 + "}}}\n"
DEEP_BLOCK = "".join("  " * depth + f"k{depth}:\n" for depth in range(200)) + "  " * 200 + "v: 1\n"
DEEP_OVERRIDE = "[" * 3000 + "]" * 3000
BIG_INT = "config:\n  params:\n    limit_samples: " + "9" * 5000 + "\n"
LATIN1 = "config:\n  params:\n    extra:\n      name: caf\xe9\n".encode("latin-1")
UTF16 = "config:\n  type: gsm8k\n".encode("utf-16")
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))


def valid_results() -> str:
    return RESULTS.read_text()


def results_named(name: str) -> str:
    """The sample results.yml with its task (and group) named ``name`` (a YAML double-quoted scalar)."""
    return valid_results().replace("    gsm8k:\n", f'    "{name}":\n')


def record_text(**changes: object) -> str:
    """A valid local run record (every task failed, so no command writes it back), with top-level changes."""
    record: RunRecord = run_record([task(0, "gsm8k_sample", key=None)])
    record.tasks[0].state, record.tasks[0].reason, record.host = "failed", "exit 1", "elsewhere"
    data = record.model_dump(mode="json")
    data.update(changes)
    return dump_yaml(data)


def record_with_task(**changes: object) -> str:
    """A valid record whose only task has ``changes`` (names, paths)."""
    record = run_record([task(0, "gsm8k_sample", key=None)])
    data = record.model_dump(mode="json")
    data["host"] = "elsewhere"
    data["tasks"][0].update({"state": "failed", "reason": "exit 1", **changes})
    return dump_yaml(data)


# ---- building a case ----------------------------------------------------------------------------------------------


def put(tmp: Path, name: str, content: str | bytes) -> str:
    """Write an input file under tmp/input; returns its path."""
    path = tmp / "input" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


def put_record(tmp: Path, content: str | bytes, *, run_id: str = RUN_ID, name: str = "run.yml") -> None:
    """Write a run record into the test's state directory (see conftest: tmp/evals-state)."""
    directory = tmp / "evals-state" / "runs" / run_id
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


def runtime_args(tmp: Path, *extra: str, framework: Path = LM_EVAL, dry_run: bool = True,
                 model_id: str = "m") -> list[str]:
    """run_eval of gsm8k against a completions endpoint, output under tmp/out."""
    return ["--framework", str(framework), "run_eval", "--eval_type", "gsm8k", "--model_id", model_id,
            "--model_url", URL, "--model_type", "completions", "--output_dir", str(tmp / "out"), *extra,
            *(["--dry_run"] if dry_run else [])]


def host_run(tmp: Path, *extra: str, model_id: str = "m") -> list[str]:
    """`evals run` of gsm8k for real (fake launcher): bad input must stop it before anything is written."""
    return ["run", "--eval_type", "gsm8k", "--model_id", model_id, "--model_url", URL, "--model_type",
            "completions", "--output_dir", str(tmp / "out"), *extra]


def with_run_config(content: str | bytes, *, host: bool) -> Build:
    def build(tmp: Path) -> list[str]:
        path = put(tmp, "run.yml", content)
        return host_run(tmp, "--run_config", path) if host else runtime_args(tmp, "--run_config", path)
    return build


def with_framework(content: str | bytes) -> Build:
    return lambda tmp: runtime_args(tmp, framework=Path(put(tmp, "framework.yml", content)))


def with_results(content: str | bytes, *, as_dir: bool = False) -> Build:
    def build(tmp: Path) -> list[str]:
        path = Path(put(tmp, "results.yml", content))
        return ["show", str(path.parent if as_dir else path)]
    return build


def with_record(content: str | bytes, *command: str, run_id: str = RUN_ID) -> Build:
    def build(tmp: Path) -> list[str]:
        put_record(tmp, content, run_id=run_id)
        return list(command) or ["status", run_id]
    return build


def with_slurm_config(content: str | bytes) -> Build:
    def build(tmp: Path) -> list[str]:
        return host_run(tmp, "--executor", "slurm", "--slurm_config", put(tmp, "slurm.yml", content),
                        "--output_root", str(tmp / "shared"))
    return build


def with_manifest(content: str | bytes) -> Build:
    def build(tmp: Path) -> list[str]:
        put(tmp, "carry/manifest.json", content)
        return ["prefetch", "--verify", str(tmp / "input" / "carry")]
    return build


def args(*argv: str) -> Build:
    return lambda tmp: list(argv)


@dataclass(frozen=True)
class Case:
    """One hostile input: which CLI, how to build it, the exit code, what the output must (not) say."""

    name: str
    cli: Literal["host", "runtime"]
    build: Build
    code: int = 2
    says: str = ""
    """A substring of the output (stderr for a refusal)."""
    never: tuple[str, ...] = ()
    """Substrings the output must not hold (besides a raw ESC, always checked)."""
    warnings: int = 0
    """For exit 0: how many warning lines stderr holds."""
    env: dict[str, str] = field(default_factory=dict)
    marks: tuple[pytest.MarkDecorator, ...] = ()


def host(name: str, build: Build, **kw: object) -> Case:
    return Case(name, "host", build, **kw)  # type: ignore[arg-type]


def runtime(name: str, build: Build, **kw: object) -> Case:
    return Case(name, "runtime", build, **kw)  # type: ignore[arg-type]


def bad_id(name: str, run_id: str, command: str = "status") -> Case:
    return host(f"run-id-{name}-{command}", args(command, run_id), says="not a run id")


def _link_outside(tmp: Path) -> list[str]:
    outside = tmp / "outside" / RUN_ID
    outside.mkdir(parents=True)
    (outside / "run.yml").write_text(record_text())
    runs = tmp / "evals-state" / "runs"
    runs.mkdir(parents=True)
    (runs / RUN_ID).symlink_to(outside)
    return ["status", RUN_ID]


def _record_is_directory(tmp: Path) -> list[str]:
    (tmp / "evals-state" / "runs" / RUN_ID / "run.yml").mkdir(parents=True)
    return ["status", RUN_ID]


def _runs_with(tmp: Path, name: str, content: str, *, run_id: str = RUN_ID) -> list[str]:
    """One good run (another id) plus the given entry; `evals runs` must list the good one."""
    put_record(tmp, record_text(id="20250101-000000-0001"), run_id="20250101-000000-0001")
    put_record(tmp, content, run_id=run_id, name=name)
    return ["runs"]


def _runs_with_file(tmp: Path, name: str) -> list[str]:
    put_record(tmp, record_text(id="20250101-000000-0001"), run_id="20250101-000000-0001")
    (tmp / "evals-state" / "runs" / name).write_text("not a run\n")
    return ["runs"]


def _two_task_logs(tmp: Path) -> list[str]:
    record = run_record([task(0, "[/]", key=None), task(1, "[bold]b", key=None)])
    data = record.model_dump(mode="json")
    data["host"] = "elsewhere"
    for entry in data["tasks"]:
        entry.update({"state": "failed", "log": str(tmp / "input" / f"{entry['index']}.log")})
        put(tmp, f"{entry['index']}.log", "a log line\n")
    put_record(tmp, dump_yaml(data))
    return ["logs", RUN_ID]


# ---- the corpus ---------------------------------------------------------------------------------------------------

CASES: list[Case] = [
    # YAML bombs: alias expansion is bounded wherever YAML is read
    runtime("bomb-run-config", with_run_config(RUN_CONFIG_BOMB, host=False), says="expands to more than 100,000"),
    host("bomb-run-config", with_run_config(RUN_CONFIG_BOMB, host=True), says="expands to more than 100,000"),
    host("bomb-results-show", with_results(laughs()), says="expands to more than 250,000"),
    host("bomb-results-show-dir", with_results(laughs(), as_dir=True), says="expands to more than"),
    host("bomb-record-status", with_record(laughs()), says="expands to more than 250,000"),
    host("bomb-record-logs", with_record(laughs(), "logs", RUN_ID), says="expands to more than"),
    host("bomb-record-resubmit", with_record(laughs(), "resubmit", RUN_ID), says="expands to more than"),
    host("bomb-record-latest", with_record(laughs(), "status"), says="expands to more than"),
    host("bomb-slurm-config", with_slurm_config("sbatch_extra: []\n" + laughs()), says="expands to more than"),
    runtime("bomb-framework", with_framework("framework: {name: x, pkg_name: x}\n" + laughs()),
            says="expands to more than"),
    runtime("bomb-overrides", lambda t: runtime_args(t, "--overrides", f"config.params.extra.x={flow_laughs()}"),
            says="expands to more than"),
    host("bomb-overrides", lambda t: host_run(t, "--overrides", f"config.params.extra.x={flow_laughs()}"),
         says="expands to more than"),
    host("bomb-overrides-dry-run", lambda t: [*host_run(t, "--overrides", f"config.params.extra.x={flow_laughs()}"),
                                              "--dry_run"], says="expands to more than"),
    runtime("bomb-fake-framework-run", lambda t: runtime_args(
        t, "--run_config", put(t, "run.yml", RUN_CONFIG_BOMB), framework=FAKE, dry_run=False),
        says="expands to more than"),
    # recursive aliases
    runtime("recursive-sequence", with_run_config(EXTRA + "      x: &a [1, *a]\n", host=False), says="recursive alias"),
    host("recursive-mapping", with_run_config(EXTRA + "      x: &a {y: *a}\n", host=True), says="recursive alias"),
    runtime("recursive-merge-key", with_run_config(EXTRA + "      x: &a {<<: *a}\n", host=False),
            says="recursive alias"),
    runtime("recursive-nested", with_run_config(EXTRA + "      x: &a [[[[*a]]]]\n", host=False),
            says="recursive alias"),
    host("recursive-results", with_results("results: &r {tasks: *r}\n"), says="recursive alias"),
    host("recursive-record", with_record("tasks: &t [*t]\n"), says="recursive alias"),
    host("recursive-slurm-config", with_slurm_config("images: &i {x: *i}\n"), says="recursive alias"),
    runtime("recursive-overrides", lambda t: runtime_args(t, "--overrides", "config.params.extra.x=&a [*a]"),
            says="recursive alias"),
    # nesting, numbers, tags, documents
    runtime("deep-flow", with_run_config(DEEP_FLOW, host=False), says="nested deeper than 64"),
    host("deep-block-results", with_results(DEEP_BLOCK), says="nested deeper than 64"),
    host("deep-record", with_record(DEEP_BLOCK), says="nested deeper than 64"),
    runtime("deep-overrides", lambda t: runtime_args(t, "--overrides", f"config.params.extra.x={DEEP_OVERRIDE}"),
            says="nested deeper than 64"),
    runtime("huge-integer", with_run_config(BIG_INT, host=False), says="an integer of 5000 characters"),
    host("huge-integer-results", with_results(valid_results().replace("count: 10", "count: " + "7" * 5000)),
         says="an integer of 5000 characters"),
    runtime("binary-tag", with_run_config(EXTRA + "      x: !!binary /w==\n", host=False), says="!!binary"),
    host("binary-tag-dry-run", lambda t: [*with_run_config(EXTRA + "      x: [1, !!binary /w==]\n", host=True)(t),
                                          "--dry_run"], says="!!binary"),
    runtime("set-tag", with_run_config(EXTRA + "      x: !!set {a, b}\n", host=False), says="!!set"),
    runtime("omap-tag", with_run_config(EXTRA + "      x: !!omap [a: 1]\n", host=False), says="!!omap"),
    runtime("python-tag", with_run_config(EXTRA + "      x: !!python/object/apply:os.system [id]\n", host=False),
            says="could not determine a constructor"),
    host("python-tag-results", with_results("!!python/name:os.system\n"), says="could not determine a constructor"),
    runtime("two-documents", with_run_config("config: {}\n---\nconfig: {}\n", host=False), says="malformed YAML"),
    runtime("undefined-alias", with_run_config("config: *nowhere\n", host=False), says="undefined alias"),
    runtime("duplicate-key", with_run_config("config: {}\nconfig: {}\n", host=False), says="duplicate key"),
    runtime("top-level-list", with_run_config("- config\n", host=False), says="mapping at the top level"),
    host("top-level-scalar-results", with_results("just text\n"), says="mapping at the top level"),
    host("results-null", with_results("~\n"), says="missing required key"),
    # size limits
    runtime("oversize-run-config", with_run_config("#" * (MIB + 1), host=False), says="larger than 1 MiB"),
    host("oversize-run-config", with_run_config("#" * (MIB + 1), host=True), says="larger than 1 MiB"),
    host("oversize-results", with_results("#" * (4 * MIB + 1)), says="larger than 4 MiB"),
    host("oversize-record", with_record("#" * (4 * MIB + 1)), says="larger than 4 MiB"),
    runtime("oversize-framework", with_framework("#" * (MIB + 1)), says="larger than 1 MiB"),
    host("oversize-slurm-config", with_slurm_config("#" * (MIB + 1)), says="larger than 1 MiB"),
    runtime("dev-zero-run-config", lambda t: runtime_args(t, "--run_config", "/dev/zero"), says="larger than 1 MiB"),
    host("dev-zero-run-config", lambda t: host_run(t, "--run_config", "/dev/zero"), says="larger than 1 MiB"),
    runtime("too-many-nodes", with_run_config(EXTRA + "      x: [" + "1," * 150_000 + "]\n", host=False),
            says="expands to more than 100,000"),
    # encodings, NUL bytes, control characters
    runtime("latin-1-run-config", with_run_config(LATIN1, host=False), says="run.yml:4: not UTF-8"),
    host("latin-1-run-config", with_run_config(LATIN1, host=True), says="run.yml:4: not UTF-8"),
    host("latin-1-results", with_results(valid_results().encode() + b"extra: \xff\n"), says="not UTF-8"),
    host("latin-1-record", with_record(record_text().encode() + b"# \xc3\x28\n"), says="not UTF-8"),
    runtime("latin-1-framework", with_framework(b"framework:\n  name: \xe9\n"), says="framework.yml:2: not UTF-8"),
    runtime("utf-16-run-config", with_run_config(UTF16, host=False), says="run.yml:1: not UTF-8"),
    runtime("png-as-run-config", with_run_config(PNG, host=False), says="not UTF-8"),
    runtime("nul-byte-run-config", with_run_config(b"config:\n  type: gsm\x008k\n", host=False),
            says="run.yml:2: malformed YAML: character '\\x00'"),
    host("nul-byte-results", with_results(valid_results() + "x: \x00\n"), says="character '\\x00'"),
    host("nul-byte-record", with_record(record_text() + "\x00"), says="character '\\x00'"),
    runtime("escape-sequence-run-config", with_run_config("config:\n  type: \x1b[2Jgsm8k\n", host=False),
            says="character '\\x1b'"),
    runtime("nul-escape-model-id", lambda t: runtime_args(t, "--overrides", 'target.api_endpoint.model_id="a\\0b"'),
            says="NUL"),
    runtime("run-config-is-a-directory", lambda t: runtime_args(t, "--run_config", str(t)), says="is a directory"),
    host("run-config-missing", lambda t: host_run(t, "--run_config", str(t / "absent.yml")), says="file not found"),
    runtime("newline-in-argument", args("--framework", str(LM_EVAL), "run_eval", "x\ny\x1b[2J"),
            says="unrecognized arguments"),
    host("escape-in-command-name", args("st\x1b[31matus\nx"), says="No such command"),
    # run ids: validated and kept inside the state directory
    bad_id("dotdot-slash", "../x"),
    bad_id("slash", "a/b", "logs"),
    bad_id("dotdot", "..", "cancel"),
    bad_id("dot", ".", "resubmit"),
    bad_id("too-long", "2" * 65),
    bad_id("very-long", "x" * 5000, "logs"),
    bad_id("absolute", "/etc/passwd"),
    bad_id("empty", "", "cancel"),
    bad_id("space", "a b", "resubmit"),
    bad_id("escape", "a\x1b[2Jb"),
    bad_id("newline", "a\nb", "logs"),
    bad_id("hidden", ".hidden"),
    host("run-id-resume-dotdot", args("run", "--resume", "../../x"), says="not a run id"),
    host("run-id-resume-slash", args("run", "--resume", "a/b", "--wait"), says="not a run id"),
    host("run-dir-links-outside", _link_outside, says="leads outside"),
    # corrupt or foreign run records: named by status/logs/cancel/resubmit
    host("record-truncated", with_record(record_text()[:200]), says="unreadable record"),
    host("record-wrong-types-logs", with_record(record_text(tasks="none"), "logs", RUN_ID), says="unreadable record"),
    host("record-a-list-cancel", with_record("- 1\n- 2\n", "cancel", RUN_ID), says="mapping at the top level"),
    host("record-unknown-key-resubmit", with_record(record_text(extra_key=1), "resubmit", RUN_ID),
         says="unknown key 'extra_key'"),
    host("record-of-another-run", with_record(record_text(id="20990101-000000-0002")), says="is of run"),
    host("record-id-traversal", with_record(record_text(id="../../etc")), says="not a run id"),
    host("record-empty", with_record(""), says="missing required key"),
    host("record-log-nul-path", with_record(record_with_task(log="/tmp/a\x00b"), "logs", RUN_ID),
         says="cannot read the log"),
    host("record-log-directory", lambda t: with_record(record_with_task(log=str(t)), "logs", RUN_ID)(t),
         says="Is a directory"),
    host("record-is-directory", _record_is_directory, says="no run"),
    # `evals runs`: what is not a readable run is skipped with a warning
    host("runs-corrupt-record", lambda t: _runs_with(t, "run.yml", "tasks: [\n"), code=0, warnings=1,
         says=RUN_ID[:8]),
    host("runs-foreign-file", lambda t: _runs_with_file(t, "notes.txt"), code=0, warnings=1, says="not a run"),
    host("runs-foreign-directory", lambda t: _runs_with(t, "run.yml", record_text(), run_id="not a run"), code=0,
         warnings=1, says="'not a run'"),
    host("runs-directory-without-record", lambda t: _runs_with(t, "other.txt", "x", run_id="20990101-000000-0009"),
         code=0, warnings=1, says="has no run.yml"),
    host("runs-record-of-another-run", lambda t: _runs_with(t, "run.yml", record_text(id="20990101-000000-0003"),
                                                            run_id="20990101-000000-0004"), code=0, warnings=1),
    host("runs-bomb", lambda t: _runs_with(t, "run.yml", laughs()), code=0, warnings=1, says="expands"),
    host("runs-markup-in-task", lambda t: _runs_with(t, "run.yml", record_with_task(task="[/]"),
                                                     run_id=RUN_ID), code=0, warnings=0, says="[/]"),
    # names from files: shown literally, never as markup or terminal control
    host("show-markup-close-tag", with_results(results_named("[/]")), code=0, says="[/]"),
    host("show-markup-style", with_results(results_named("[bold red]x[/bold red]")), code=0,
         says="[bold red]x[/bold red]"),
    host("show-escape-sequence", with_results(results_named("\\e[2Jwiped")), code=0, says="\\x1b[2Jwiped"),
    host("show-bidi-override", with_results(results_named("abc\\u202Edef")), code=0, says="\\u202e"),
    host("show-newline-in-name", with_results(results_named("a\\nb")), code=0, says="a\\nb"),
    host("show-emoji-code", with_results(results_named(":thumbs_up:")), code=0, says=":thumbs_up:"),
    host("show-markup-in-title", with_results(valid_results().replace("framework_name: lm-eval",
                                                                      'framework_name: "[/]\\e[31m"')),
         code=0, says="[/]\\x1b[31m"),
    host("status-markup-and-escapes", with_record(record_with_task(task="[/]\x1b]0;owned\x07", harness="[red]")),
         code=0, says="[red].[/]\\x1b]0;owned\\x07"),
    host("status-markup-in-output-dir", with_record(record_with_task(output_dir="/x/[/]")), code=0, says="[/]"),
    host("logs-markup-in-names", _two_task_logs, code=0, says="[/]"),
    host("show-missing-file", lambda t: ["show", str(t / "absent.yml")], says="no results file"),
    host("show-directory-without-results", lambda t: ["show", str(t)], says="no results file"),
    host("show-invalid-value", with_results(valid_results().replace("value: 0.7", "value: [x]", 1)),
         says="invalid results file"),
    # model ids that would name a directory outside the output dir
    runtime("model-id-x-dotdot", lambda t: runtime_args(t, model_id="x/.."), says="model_id"),
    runtime("model-id-dotdot", lambda t: runtime_args(t, model_id=".."), says="model_id"),
    runtime("model-id-dot", lambda t: runtime_args(t, model_id="."), says="model_id"),
    runtime("model-id-vlm-org-dotdot", lambda t: ["--framework", str(VLM), "run_eval", "--eval_type", "ocrbench",
                                                  "--model_id", "org/..", "--model_url", URL, "--model_type", "vlm",
                                                  "--output_dir", str(t / "out"), "--dry_run"], says="model_id"),
    runtime("model-id-middle-dotdot", lambda t: runtime_args(t, "--overrides", "target.api_endpoint.model_id=a/../b"),
            says="model_id"),
    host("model-id-dotdot-host", lambda t: host_run(t, model_id="../.."), says="model_id"),
    host("model-id-x-dotdot-dry-run", lambda t: [*host_run(t, model_id="x/.."), "--dry_run"], says="model_id"),
    # image names are checked before any engine is asked
    host("image-traversal", lambda t: host_run(t, "--image", "evals/../x"), says="is not an image name"),
    host("image-space", lambda t: host_run(t, "--image", "evals/lm eval"), says="is not an image name"),
    host("image-empty-tag", lambda t: host_run(t, "--image", "evals/lm-eval:"), says="is not an image name"),
    host("image-escape", lambda t: host_run(t, "--image", "evals\x1b[2J"), says="is not an image name"),
    host("image-too-long", lambda t: host_run(t, "--image", "a" * 300), says="is not an image name"),
    host("image-option-like", lambda t: host_run(t, "--image=--rm"), says="is not an image name"),
    host("image-short-digest", lambda t: host_run(t, "--image", "evals/lm-eval@sha256:abc"),
         says="is not an image name"),
    host("image-uppercase-path", lambda t: host_run(t, "--image", "evals/LM-eval"), says="is not an image name"),
    host("image-dry-run", lambda t: [*host_run(t, "--image", "x;id"), "--dry_run"], says="is not an image name"),
    host("image-prefetch", lambda t: ["prefetch", "--eval_type", "gsm8k", "--to", str(t / "carry"), "--image",
                                      "evals/lm-eval:latest x"], says="is not an image name"),
    host("image-registry-variable", lambda t: host_run(t, "--harness", "lm-eval"),
         env={"EVALS_REGISTRY": "my registry"}, says="$EVALS_REGISTRY"),
    # Slurm: % in paths is escaped for sbatch (the dry run shows the script), spaces refused
    host("slurm-percent-output-root", lambda t: [*host_run(t, "--executor", "slurm", "--output_root",
                                                          str(t / "o%j%x")), "--dry_run"], code=0,
         says="o%%j%%x/"),
    host("slurm-space-output-root", lambda t: host_run(t, "--executor", "slurm", "--output_root", str(t / "a b")),
         says="contains spaces"),
    # prefetch manifests (JSON)
    host("manifest-deep", with_manifest("[" * 100_000), says="not JSON"),
    host("manifest-huge-integer", with_manifest('{"files": ' + "1" * 5000 + "}"), says="not JSON"),
    host("manifest-latin-1", with_manifest(b'{"x": "\xe9"}'), says="not UTF-8"),
    host("manifest-a-list", with_manifest("[]"), says="invalid manifest"),
]


# ---- running a case -----------------------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple[bool, int, int]]:
    """Every path under ``root`` (links not followed) with its kind, size and modification time."""
    found: dict[str, tuple[bool, int, int]] = {}
    for path in [root, *root.rglob("*")]:
        info = path.lstat()
        found[str(path.relative_to(root))] = (path.is_dir(), info.st_size, info.st_mtime_ns)
    return found


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> FakeLauncher:
    """The fake launcher (no case starts a container); no registry prefix; wide tables."""
    monkeypatch.delenv("EVALS_REGISTRY", raising=False)
    monkeypatch.setenv("COLUMNS", "400")  # whole names in rich tables
    return FakeLauncher()


@pytest.fixture
def services(fakes: FakeLauncher) -> HostServices:
    """The CLI over images from labels, the fake launcher and Slurm; asking the container engine fails the case (the
    catalog double holds only IMAGES; the containers' control is no engine)."""
    def no_engine() -> None:
        raise AssertionError("the container engine was asked")

    def executor(kind: str) -> LocalExecutor | SlurmExecutor:
        if kind == "slurm":
            return SlurmExecutor(SlurmCli(FakeSlurm()), no_engine)  # type: ignore[arg-type]
        return LocalExecutor(fakes, no_engine, cancel_wait=0.1)  # type: ignore[arg-type]

    return fake_services(images=IMAGES, launcher=fakes, executor_for=executor)


def run_cli(kind: Literal["host", "runtime"], argv: list[str], capsys: pytest.CaptureFixture[str],
            services: HostServices | None = None) -> tuple[int, str, str]:
    """Run one command in-process (the host's over ``services``, else the real ones); an exception escaping the CLI
    (a traceback) fails the test."""
    capsys.readouterr()
    if kind == "host":
        code = host_cli.main(argv, services=services)
    else:
        try:
            code = runtime_cli.main(argv)
        except SystemExit as stop:  # argparse's usage errors
            code = stop.code if isinstance(stop.code, int) else 2
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("case", [pytest.param(c, id=f"{c.cli}-{c.name}", marks=c.marks) for c in CASES])
def test_hostile_input(case: Case, tmp_path: Path, *, capsys: pytest.CaptureFixture[str],
                       monkeypatch: pytest.MonkeyPatch, fakes: FakeLauncher, services: HostServices) -> None:
    argv = case.build(tmp_path)
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    before = snapshot(tmp_path)
    code, out, err = run_cli(case.cli, argv, capsys, services)
    output = out + err
    assert "Traceback" not in output
    assert code == case.code, output
    assert "\x1b" not in output, "a terminal escape sequence reached the terminal"
    assert case.says in output, output
    for text in case.never:
        assert text not in output
    lines = err.strip().splitlines()
    if case.code != 0:
        assert len(lines) == 1, err
        assert lines[0].startswith(("evals: error: ", "python -m orchestrator.runtime: error: ")), err
    else:
        assert sum(line.startswith("evals: warning: ") for line in lines) == case.warnings, err
    assert fakes.launched == []
    assert snapshot(tmp_path) == before, "something was written"


def test_the_corpus_is_large_and_names_are_unique() -> None:
    assert len(CASES) >= 70
    assert len({(c.cli, c.name) for c in CASES}) == len(CASES)


"""The core_evals command line, with the Evals Factory's flags and behaviour.

``core_evals_<harness> ls`` and ``core_evals_<harness> run_eval ...``; outside an image the
same program runs as ``python -m orchestrator.runtime --framework FILE ls|run_eval ...``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from orchestrator import __version__
from orchestrator.runtime.resolved import load_resolved, refuse_resolution_flags
from orchestrator.runtime.run import (
    LoadedFramework,
    describe,
    execute,
    fetch_data,
    load_framework,
    plan_run,
    receive_secret_from_stdin,
)
from orchestrator.schema.config import ENDPOINT_TYPES
from orchestrator.schema.errors import EvalsError, InputError, printable
from orchestrator.schema.resolve import RunRequest


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {printable(message)} (see {self.prog} --help)\n")


def build_parser(prog: str, *, framework_preset: bool) -> argparse.ArgumentParser:
    """The argument parser; ``--framework`` is required unless the entry point presets it."""
    parser = _Parser(prog=prog, description="List and run the evaluations of one harness.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--framework", type=Path, required=not framework_preset, default=None,
                        help="framework.yml defining the harness" + (" (preset)" if framework_preset else ""))
    commands = parser.add_subparsers(dest="command", required=True, metavar="{ls,run_eval,fetch_data}",
                                     parser_class=_Parser)
    commands.add_parser("ls", help="list the tasks this harness offers")
    run = commands.add_parser("run_eval", help="run one evaluation",
                              description="Run one evaluation. Priority, lowest to highest: framework defaults < "
                                          "task defaults < --run_config < explicit flags < --overrides. "
                                          "--resolved_config FILE runs a run resolved already instead.")
    run.add_argument("--eval_type", "--eval-type", help="task to run: TASK or HARNESS.TASK")
    run.add_argument("--model_id", "--model-id", help="model name the endpoint serves")
    run.add_argument("--model_url", "--model-url", help="full endpoint URL, e.g. http://host:8000/v1/chat/completions")
    run.add_argument("--model_type", "--model-type", help=f"endpoint type: {', '.join(ENDPOINT_TYPES)}")
    run.add_argument("--api_key_name", "--api-key-name",
                     help="NAME of the environment variable holding the API key (never the key itself)")
    run.add_argument("--output_dir", "--output-dir", help="directory for results.yml, logs and harness files")
    run.add_argument("--run_config", "--run-config", type=Path, help="YAML run config (config: ..., target: ...)")
    run.add_argument("--overrides", help="comma-separated key=value pairs, e.g. 'config.params.limit_samples=10'")
    run.add_argument("--offline", action="store_true",
                     help="use only cached and pre-staged data; never reach the Hugging Face Hub or data URLs")
    run.add_argument("--resolved_config", "--resolved-config", type=Path, metavar="FILE",
                     help="run a config resolved already (what `evals` hands the container, and what --dry_run shows "
                          "as the rendered config) as it is, merging nothing; not with the flags above")
    run.add_argument("--dry_run", "--dry-run", action="store_true", help="print the config and command; run nothing")
    fetch = commands.add_parser("fetch_data", help="fetch a task's data into the cache (what `evals prefetch` runs)",
                                description="Fetch (or, with --offline, check) everything a task needs into the "
                                            "cache, without a model endpoint.")
    fetch.add_argument("--eval_type", "--eval-type", required=True, help="task: TASK or HARNESS.TASK")
    fetch.add_argument("--model_type", "--model-type", help="endpoint type the task will be run with (default: the "
                                                            "task's first supported one)")
    fetch.add_argument("--run_config", "--run-config", type=Path, help="YAML run config (for config.params.extra)")
    fetch.add_argument("--overrides", help="comma-separated key=value pairs")
    fetch.add_argument("--offline", action="store_true", help="only check that the data is in the cache")
    fetch.add_argument("--dry_run", "--dry-run", action="store_true", help="print the data command; run nothing")
    return parser


def _list_tasks(framework_path: Path) -> int:
    definition = load_framework(framework_path).definition
    lines = ["Available tasks:"]
    lines += [f"* {name} (in {definition.framework.name})" for name in definition.task_names]
    print("\n".join(lines))
    return 0


def _run_eval(framework_path: Path, args: argparse.Namespace) -> int:
    framework = load_framework(framework_path)
    if args.resolved_config is not None:
        refuse_resolution_flags({f"--{name}": getattr(args, name) for name in (
            "eval_type", "model_id", "model_url", "model_type", "api_key_name", "output_dir", "run_config",
            "overrides", "offline")})
        plan = load_resolved(framework, args.resolved_config)
    else:
        plan = plan_run(framework, RunRequest(
            eval_type=args.eval_type, model_id=args.model_id, model_url=args.model_url, model_type=args.model_type,
            api_key_name=args.api_key_name, output_dir=args.output_dir, run_config=args.run_config,
            overrides=args.overrides, offline=args.offline,
        ))
    if args.dry_run:
        sys.stdout.write(describe(plan))
        return 0
    receive_secret_from_stdin()
    execute(framework, plan)
    return 0


FETCH_URL = "http://127.0.0.1:9/v1/"
"""fetch_data needs no endpoint; the run is resolved with this placeholder, never contacted."""


def _fetch_data(framework: LoadedFramework, args: argparse.Namespace) -> int:
    definition = framework.definition
    task = definition.find_task(args.eval_type)
    defaults = definition.defaults.config
    types = task.endpoint_types or (list(defaults.supported_endpoint_types or []) if defaults else [])
    model_type = args.model_type or (types[0] if types else "chat")
    path = "completions" if model_type == "completions" else "chat/completions"
    with tempfile.TemporaryDirectory(prefix="evals-fetch-") as scratch:
        request = RunRequest(eval_type=args.eval_type, model_id="fetch-data", model_url=FETCH_URL + path,
                             model_type=model_type, output_dir=scratch, run_config=args.run_config,
                             overrides=args.overrides, offline=args.offline)
        plan = plan_run(framework, request)
        if args.dry_run:
            sys.stdout.write(f"Data step:\n\n{plan.data_command or '(none: this harness fetches no data ahead)'}\n")
            return 0
        receive_secret_from_stdin()
        fetch_data(framework, plan, log_dir=Path(scratch))
    return 0


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m orchestrator.runtime",
         framework: Path | None = None) -> int:
    """Run the CLI; returns the exit code. Errors of input print one line and return 2."""
    args = build_parser(prog, framework_preset=framework is not None).parse_args(argv)
    framework_path: Path | None = args.framework or framework
    assert framework_path is not None  # argparse requires --framework when there is no preset
    try:
        if not framework_path.is_file():
            raise InputError(f"framework file not found: {framework_path}",
                             hint="pass --framework images/<harness>/framework.yml")
        if args.command == "ls":
            return _list_tasks(framework_path)
        if args.command == "fetch_data":
            return _fetch_data(load_framework(framework_path), args)
        return _run_eval(framework_path, args)
    except EvalsError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130

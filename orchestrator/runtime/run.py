"""run_eval: merge -> validate -> render -> run -> parse -> write samples.jsonl and results.yml -> check errors."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from orchestrator import __version__
from orchestrator.runtime.data import check_cache, harness_env, run_data_step
from orchestrator.runtime.execute import run_streaming
from orchestrator.runtime.harness_parser import load_parsers
from orchestrator.runtime.proxies import describe_proxies, harness_view, planned_view, running_proxies
from orchestrator.runtime.proxy.adjust import MASKED_VARS
from orchestrator.runtime.proxy.upstream_proxy import proxy_for_url
from orchestrator.runtime.render import render_command
from orchestrator.runtime.retries import auxiliary_clients, client_settings, proxy_policy
from orchestrator.runtime.samples import (
    check_errors,
    collect_samples,
    join_requests,
    with_sample_stats,
    write_samples,
)
from orchestrator.schema.auxiliary import proxied_endpoints
from orchestrator.schema.config import Evaluation
from orchestrator.schema.container import (
    HOST_VERSION_VAR,
    HUB_TOKEN_VAR,
    IMAGE_DIGEST_VAR,
    IMAGE_REPO_DIGEST_VAR,
    IMAGE_VAR,
    PROXY_VARS,
    SECRET_STDIN_VAR,
)
from orchestrator.schema.deployment import served_from_env
from orchestrator.schema.errors import HarnessError, InputError
from orchestrator.schema.framework import FrameworkDefinition
from orchestrator.schema.loading import dump_yaml, load_model
from orchestrator.schema.resolve import RunRequest, resolve_run
from orchestrator.schema.results import Provenance, ResultsFile
from orchestrator.schema.samples import SAMPLES_FILE
from orchestrator.schema.sanity import KeyVariable, run_keys, unset_key

RUN_CONFIG_FILE = "run_config.yml"
"""The resolved run in its output dir (what the host hands the container, and what ran)."""


@dataclass(frozen=True)
class LoadedFramework:
    """A framework definition and the bytes it was read from (for provenance)."""

    path: Path
    definition: FrameworkDefinition
    sha256: str


def load_framework(path: Path) -> LoadedFramework:
    """Read and validate a framework.yml."""
    definition = load_model(FrameworkDefinition, path)
    return LoadedFramework(path, definition, hashlib.sha256(path.read_bytes()).hexdigest())


@dataclass(frozen=True)
class Plan:
    """A resolved run and the command it will execute."""

    evaluation: Evaluation
    command: str
    data_command: str | None = None
    """The rendered data step (fetch online / check offline), run before the harness; None if the framework has none."""


def plan_run(framework: LoadedFramework, request: RunRequest) -> Plan:
    """Resolve and render without touching the disk or the environment."""
    return plan_evaluation(framework, resolve_run(framework.definition, request))


def plan_evaluation(framework: LoadedFramework, evaluation: Evaluation) -> Plan:
    """Render a resolved run (resolved here, or by the host: ``--resolved_config``)."""
    shown = planned_view(evaluation)
    data = render_command(evaluation, source=str(framework.path), data=True) if evaluation.data_command else None
    command = render_command(shown, source=str(framework.path), clients=auxiliary_clients(evaluation))
    return Plan(evaluation, command, data or None)


def evaluation_data(evaluation: Evaluation) -> dict[str, object]:
    """The resolved run as written to run_config.yml and shown by --dry_run (no data_command key when there is none,
    as NeMo Evaluator's files have none)."""
    return evaluation.model_dump(mode="json", exclude={"data_command"} if evaluation.data_command is None else None)


def resolved_config_text(evaluation: Evaluation) -> str:
    """run_config.yml: the text --dry_run shows as the rendered config, the host hands the container, and the run
    leaves in its output dir."""
    return dump_yaml(evaluation_data(evaluation))


def describe(plan: Plan) -> str:
    """What --dry_run prints."""
    text = f"Rendered config:\n\n{resolved_config_text(plan.evaluation)}\n"
    if plan.data_command:
        mode = "checked in the cache (offline)" if plan.evaluation.config.offline else "fetched into the cache"
        text += f"Data step (the task's data {mode} before any request to the model):\n\n{plan.data_command}\n\n"
    text += f"Rendered command:\n\n{plan.command}\n" + describe_proxies(plan.evaluation)
    if plan.evaluation.target.api_endpoint.adapter_config.enabled:
        policy, client = proxy_policy(plan.evaluation), client_settings(plan.evaluation)
        text += (f"Retries: the proxy makes up to {policy.attempts} attempts per request ({policy.timeout:g} s each, "
                 f"none started after {policy.max_retry_seconds:g} s); the harness makes 1 and waits up to "
                 f"{client.timeout} s\n")
    return text


def receive_secret_from_stdin() -> None:
    """If the launcher said so, read secrets from stdin (one line each) into the variables it names.

    The host launcher hands the API key, the Hub token and proxy URLs over this way so that their values are in
    no file, no command line and not in ``docker inspect``.
    """
    names = os.environ.pop(SECRET_STDIN_VAR, None)
    for name in (names or "").split(","):
        if name.strip():
            os.environ[name.strip()] = sys.stdin.readline().rstrip("\n")


def _secrets(keys: list[str]) -> list[str]:
    """Values masked in everything the harness prints or logs: every key the run names (endpoint, judge, ...),
    the Hub token and the password part of a proxy URL (``http://user:PASSWORD@proxy:3128``)."""
    values: list[str | None] = [*keys, os.environ.get(HUB_TOKEN_VAR)]
    for name in PROXY_VARS:
        proxy = os.environ.get(name, "")
        values.append(urlsplit(proxy).password if "@" in proxy else None)
    return list(dict.fromkeys(value for value in values if value))


def _key_values(keys: list[KeyVariable]) -> list[str]:
    """The values of the run's key variables; an unset one is bad input (before anything is written)."""
    missing = unset_key(keys, os.environ)
    if missing is not None:
        raise missing
    return [os.environ[key.name] for key in keys]


def prepare_output_dir(path: Path) -> None:
    """Create the output dir and check it is writable; failure is bad input (exit 2)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        (path / "logs").mkdir(exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise InputError(f"cannot write to output dir {str(path)!r}: {err.strerror}",
                         hint="pass an --output_dir you can write to") from None


def keep_or_write(path: Path, text: str) -> None:
    """Write ``text`` unless the file holds exactly it already (the host wrote it: it is what runs, byte for byte)."""
    data = text.encode("utf-8")
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return
    except OSError:
        pass
    write_atomic(path, text)


def write_atomic(path: Path, text: str) -> None:
    """Write a file so that readers see the old content or the new, never half of it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fetch_data(framework: LoadedFramework, plan: Plan, *, log_dir: Path) -> None:
    """``fetch_data``: only the data step (what ``evals prefetch`` runs in each image)."""
    if not plan.data_command:
        print(f"{framework.definition.framework.name} fetches no data ahead of a run: nothing to do", file=sys.stderr)
        return
    env = harness_env(os.environ, offline=plan.evaluation.config.offline)
    check_cache(env, offline=plan.evaluation.config.offline)
    run_data_step(plan.data_command, log_path=log_dir / "data.log", env=env, secrets=_secrets([]))
    print(f"data for {plan.evaluation.config.type}: ready", file=sys.stderr)


def dump_results(document: ResultsFile) -> str:
    """results.yml text; score stats a harness did not report are left out rather than written as null."""
    data = document.model_dump(mode="json")
    data["results"] = document.results.model_dump(mode="json", exclude_none=True)
    return dump_yaml(data)


def execute(framework: LoadedFramework, plan: Plan) -> ResultsFile:
    """Run the plan: returns the results written to results.yml, or raises HarnessError (the harness failed),
    ResultsParseError (its output cannot be read) or, after writing both files, SampleErrorLimitError."""
    evaluation = plan.evaluation
    parsers = load_parsers(framework.path.parent)  # a harness folder without its parser fails before anything runs
    key_vars = run_keys(evaluation)
    keys = _key_values(key_vars)
    for proxied in proxied_endpoints(evaluation):
        proxy_for_url(proxied.url)  # a proxy variable that is not a URL: one line before anything is written
    output_dir = Path(evaluation.config.output_dir)
    prepare_output_dir(output_dir)
    keep_or_write(output_dir / RUN_CONFIG_FILE, resolved_config_text(evaluation))
    served = served_from_env(os.environ)  # checked before the harness runs
    started = datetime.now(UTC)
    clock = time.monotonic()
    offline = evaluation.config.offline
    env = harness_env(os.environ, offline=offline)
    if plan.data_command:
        check_cache(env, offline=offline)
        run_data_step(plan.data_command, log_path=output_dir / "logs" / "data.log", env=env, secrets=_secrets(keys))
    # for the proxy's body logs (and its other processes, which inherit it)
    os.environ[MASKED_VARS] = ",".join([*(key.name for key in key_vars), HUB_TOKEN_VAR])
    with running_proxies(evaluation, output_dir) as proxies:
        command = render_command(harness_view(evaluation, proxies.origins()), source=str(framework.path),
                                 clients=auxiliary_clients(evaluation))
        code = run_streaming(command, log_path=output_dir / "logs" / "harness.log", env=env,
                             secrets=_secrets(keys))
    # after the proxies stopped: with their other processes' totals
    usage, usage_by_role = proxies.usage(), proxies.usage_by_role()
    provenance = Provenance(
        runtime_version=__version__, harness=evaluation.framework_name,
        harness_version=os.environ.get("EVALS_HARNESS_VERSION"), framework_sha256=framework.sha256,
        image=os.environ.get(IMAGE_VAR), image_digest=os.environ.get(IMAGE_DIGEST_VAR),
        image_repo_digest=os.environ.get(IMAGE_REPO_DIGEST_VAR), host_version=os.environ.get(HOST_VERSION_VAR),
        deployment=served, command=command, started_at=started,
        finished_at=datetime.now(UTC), duration_seconds=round(time.monotonic() - clock, 3), exit_code=code,
    )
    if code != 0:
        raise HarnessError(f"{evaluation.framework_name} exited with code {code}", exit_code=code,
                           hint=f"see {output_dir / 'logs' / 'harness.log'}")
    results = parsers.parse(output_dir)
    records = join_requests(collect_samples(evaluation.framework_name, output_dir, parser=parsers.parse_samples),
                            output_dir / "logs")
    results = with_sample_stats(results, records)
    document = ResultsFile(
        framework_name=evaluation.framework_name, pkg_name=evaluation.pkg_name, command=command,
        config=evaluation.config, target=evaluation.target, results=results, provenance=provenance, usage=usage,
        usage_by_role=usage_by_role,
    )
    write_samples(output_dir, records)
    write_atomic(output_dir / "results.yml", dump_results(document))
    print(f"Results written to {output_dir / 'results.yml'}", file=sys.stderr)
    check_errors(records, max_fraction=evaluation.config.params.max_error_fraction, path=output_dir / SAMPLES_FILE)
    return document

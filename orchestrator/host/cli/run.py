"""`evals run` and `evals resubmit`: plan a run, start it here or as Slurm jobs (or write Kubernetes Jobs), show it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.markup import escape

from orchestrator.host import api
from orchestrator.host.backends.kubernetes.jobs import KubernetesOptions
from orchestrator.host.backends.local.slots import max_parallel as containers_at_once
from orchestrator.host.cli.console import stderr, stdout, write_output
from orchestrator.host.cli.options import EvalTypes, Harness, MaxParallel, Overrides, RunId
from orchestrator.host.cli.services import HostServices, services_of
from orchestrator.host.cli.suite import export_suite, refuse_with_suite, show_suite
from orchestrator.host.records.status import outcome, show_run
from orchestrator.host.records.status import wait as wait_for
from orchestrator.host.replay import check_same, load_replay
from orchestrator.schema.record import RunRecord


def run(
    ctx: typer.Context,
    eval_type: EvalTypes = None,
    suite: Annotated[Path | None, typer.Option("--suite", help="a suite file: every (model, task) pair it names, as "
                                                               "one run (docs/suites.md)")] = None,
    model_id: Annotated[str | None, typer.Option("--model_id", "--model-id", help="model name")] = None,
    model_url: Annotated[str | None, typer.Option("--model_url", "--model-url", help="full endpoint URL")] = None,
    model_type: Annotated[str | None, typer.Option("--model_type", "--model-type",
                                                   help="chat, completions or vlm")] = None,
    api_key_name: Annotated[str | None, typer.Option("--api_key_name", "--api-key-name",
                                                     help="NAME of the variable holding the API key")] = None,
    output_dir: Annotated[Path | None, typer.Option("--output_dir", "--output-dir",
                                                    help="default: results/<harness>-<task>-<run id>; with several "
                                                         "tasks, each gets DIR/<harness>-<task>")] = None,
    run_config: Annotated[Path | None, typer.Option("--run_config", "--run-config", help="YAML run config")] = None,
    overrides: Overrides = None,
    harness: Harness = None,
    image: Annotated[str | None, typer.Option("--image", help="image to run (default evals/<harness>:latest)")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data_dir", "--data-dir",
                                                  help="pre-staged data, mounted read-only at /data")] = None,
    offline: Annotated[bool, typer.Option("--offline", help="use only the cache and pre-staged data: never reach the "
                                                            "Hugging Face Hub or data URLs")] = False,
    cache_dir: Annotated[Path | None, typer.Option("--cache_dir", "--cache-dir",
                                                   help="data cache shared by all runs (default $EVALS_CACHE_DIR or "
                                                        "~/.cache/evals)")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="a directory written by `evals prefetch` (implies "
                                                             "--offline)")] = None,
    network: Annotated[str, typer.Option("--network", help="auto (host for a localhost endpoint), host, default",
                                         click_type=click.Choice(["auto", "host", "default"]))] = "auto",
    skip_preflight: Annotated[bool, typer.Option("--skip-preflight", help="do not check the endpoint")] = False,
    dry_run: Annotated[bool, typer.Option("--dry_run", "--dry-run", help="show what would run; run nothing")] = False,
    executor: Annotated[str, typer.Option("--executor", help="local (this machine), slurm (batch jobs) or kubernetes "
                                                             "(with --dry_run: writes Job manifests)")] = "local",
    manifests: Annotated[Path | None, typer.Option("--manifests", help="kubernetes: directory for the Job manifests "
                                                                       "(default results/kubernetes-<run id>; - for "
                                                                       "stdout)")] = None,
    results_claim: Annotated[str | None, typer.Option("--results_claim", "--results-claim",
                                                      help="kubernetes: PersistentVolumeClaim for the outputs "
                                                           "(default: the output directory as a host path)")] = None,
    slurm_config: Annotated[Path | None, typer.Option("--slurm_config", "--slurm-config",
                                                      help="YAML Slurm settings (flags below override)")] = None,
    partition: Annotated[str | None, typer.Option("--partition", help="Slurm partition")] = None,
    account: Annotated[str | None, typer.Option("--account", help="Slurm account")] = None,
    time_limit: Annotated[str | None, typer.Option("--time", help="Slurm time limit per job, e.g. 2:00:00")] = None,
    gres: Annotated[str | None, typer.Option("--gres", help="Slurm generic resources, e.g. gpu:1")] = None,
    gpus: Annotated[int | None, typer.Option("--gpus", help="GPUs per job (slurm, kubernetes)")] = None,
    container_runtime: Annotated[str | None, typer.Option("--container_runtime", "--container-runtime",
                                                          help="docker, enroot or apptainer (in the jobs)")] = None,
    output_root: Annotated[Path | None, typer.Option("--output_root", "--output-root",
                                                     help="shared storage for the run's outputs and job logs")] = None,
    sbatch: Annotated[list[str] | None, typer.Option("--sbatch", help="extra sbatch option, e.g. --sbatch=--qos=high;"
                                                                      " repeatable")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="slurm: wait for the jobs and print the scores")] = False,
    max_parallel: MaxParallel = None,
    resume: Annotated[str | None, typer.Option("--resume", help="resume run RUN_ID (same as `evals resubmit`)")] = None,
    from_results: Annotated[Path | None, typer.Option(
        "--from", help="run the evaluation a results.yml records again: same image id, same resolved config (the "
                       "task, model and config flags are refused)")] = None,
) -> None:
    """Run evaluations in their harnesses' containers, here or as Slurm jobs, and print their results."""
    services = services_of(ctx)
    api.check_kubernetes(executor, dry_run=dry_run, manifests=manifests, results_claim=results_claim)
    if suite is not None:
        refuse_with_suite({"--eval_type": eval_type, "--model_id": model_id, "--model_url": model_url,
                           "--model_type": model_type, "--api_key_name": api_key_name, "--run_config": run_config,
                           "--overrides": overrides, "--harness": harness, "--image": image, "--data_dir": data_dir,
                           "--from": from_results, "--resume": resume})
    if resume is not None:
        api.refuse_changes_on_resume(eval_type=eval_type, model_id=model_id, model_url=model_url,
                                     run_config=run_config, overrides=overrides, dry_run=dry_run,
                                     from_results=from_results)
        _resume(services, resume, wait=wait, time_limit=time_limit, max_parallel=max_parallel)
        return
    replay = load_replay(from_results) if from_results is not None else None
    if replay is not None:
        api.refuse_changes({"--eval_type": eval_type, "--model_id": model_id, "--model_url": model_url,
                            "--model_type": model_type, "--api_key_name": api_key_name, "--run_config": run_config,
                            "--overrides": overrides, "--harness": harness, "--image": image, "--offline": offline},
                           by="--from")
        eval_type, overrides, offline = [replay.eval_type], replay.overrides, replay.offline
    if suite is not None:
        planned = api.plan_suite(
            suite_file=suite, output_dir=output_dir, offline=offline, cache_dir=cache_dir, data=data, network=network,
            executor=executor, slurm_config=slurm_config, partition=partition, account=account, time_limit=time_limit,
            gres=gres, gpus=gpus, container_runtime=container_runtime, output_root=output_root, sbatch=sbatch,
            catalog=services.catalog, check_keys=not dry_run and executor != "kubernetes",
            max_parallel=max_parallel)
    else:
        planned = api.plan(
            eval_type=eval_type, model_id=model_id, model_url=model_url, model_type=model_type,
            api_key_name=api_key_name, output_dir=output_dir, run_config=run_config, overrides=overrides,
            data_dir=data_dir, offline=offline, cache_dir=cache_dir, data=data, network=network, executor=executor,
            slurm_config=slurm_config, partition=partition, account=account, time_limit=time_limit, gres=gres,
            gpus=gpus, container_runtime=container_runtime, output_root=output_root, sbatch=sbatch,
            max_parallel=max_parallel,
            choose=api.image_chooser(services.catalog, harness=harness, image=image, replay=replay))
    if replay is not None:
        check_same(replay, planned.tasks[0].plan.evaluation,
                   slurm=planned.record.slurm.config if planned.record.slurm else None)
    if executor == "kubernetes":
        _write_manifests(planned, KubernetesOptions(gpus=gpus, results_claim=results_claim), manifests)
        return
    if dry_run:
        sys.stdout.write(api.describe_run(planned))
        return
    record = api.start(planned, executor_for=services.executor_for,
                       check_endpoint=None if skip_preflight else services.check_endpoint,
                       announce=lambda: _announce(planned), output=write_output)
    _finish(services, record, wait=wait)


def resubmit(ctx: typer.Context, run_id: RunId,
             wait: Annotated[bool, typer.Option("--wait", help="slurm: wait for the jobs, print the scores")] = False,
             time_limit: Annotated[str | None, typer.Option("--time", help="new Slurm time limit per job")] = None,
             max_parallel: MaxParallel = None,
             ) -> None:
    """Start a run's failed, cancelled, timed-out or interrupted tasks again; answered requests come from the cache."""
    _resume(services_of(ctx), run_id, wait=wait, time_limit=time_limit, max_parallel=max_parallel)


def _announce(planned: api.PlannedRun) -> None:
    record, tasks = planned.record, planned.tasks
    names = ", ".join(f"{p.image.harness}.{p.plan.evaluation.config.type}" for p in tasks)
    stderr.print(f"[bold]run {record.id}[/] ({record.executor}): " + escape(f"{names} in {', '.join(record.images)}"
                 + (f" -> {tasks[0].output_dir}" if len(tasks) == 1 and record.suite is None else "")
                 + (f" -> {record.suite.output_root}" if record.suite is not None else "")))


def _write_manifests(planned: api.PlannedRun, options: KubernetesOptions, manifests: Path | None) -> None:
    """Write the Job manifests (the dry run's description to stdout too, unless the manifests go there)."""
    if manifests == Path("-"):
        sys.stdout.write(api.render_manifests(planned, options))
        return
    sys.stdout.write(api.describe_run(planned))
    written = api.write_manifests(planned, options, manifests)
    stderr.print(escape(f"wrote {len(written)} Job manifest(s) to {written[0].parent}; evals does not submit them: "
                        f"kubectl apply -f {written[0].parent}"), soft_wrap=True)
    names = list(dict.fromkeys(name for task in planned.record.tasks for name in task.container.secret_envs))
    if names:
        values = " ".join(f'--from-literal={name}="${name}"' for name in names)
        stderr.print(escape(f"the Jobs read {', '.join(names)} from the Secret {options.secret_name}: kubectl create "
                            f"secret generic {options.secret_name} {values}"), soft_wrap=True)


def _resume(services: HostServices, run_id: str, *, wait: bool, time_limit: str | None,
            max_parallel: int | None) -> None:
    def announce(record: RunRecord) -> None:
        stderr.print(f"[bold]run {run_id}[/] ({record.executor}): resuming")

    record = api.resume(run_id, time_limit=time_limit, executor_for=services.executor_for, announce=announce,
                        output=write_output, max_parallel=max_parallel)
    _finish(services, record, wait=wait)


def _finish(services: HostServices, record: RunRecord, *, wait: bool) -> None:
    """After start: a submitted Slurm run says how to follow it (or waits); a finished run shows its scores."""
    if record.executor == "slurm" and not wait and not record.done:
        stderr.print(f"follow with: evals status {record.id} | evals logs {record.id} --follow"
                     f" | evals cancel {record.id}")
        print(record.id)
        return
    if not record.done:
        record = wait_for(record, services.executor_for(record.executor),
                          report=lambda line: stderr.print(escape(line)))
    # a local run of one container at a time streamed its output; a parallel one showed progress, so show the tails
    streamed = record.executor == "local" and containers_at_once(record, tasks=len(record.tasks)) == 1
    if record.suite is not None:
        show_suite(record, tails=True)
        exported = export_suite(record)
        outcome(record)
        if exported:
            raise SystemExit(exported)  # every pair succeeded, an export did not (it said how to retry)
        return
    show_run(record, stdout, stderr, table=not streamed or len(record.tasks) > 1, tails=not streamed)
    outcome(record)

"""`evals`: the host command line. Lists tasks from built images and runs them in containers."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator import __version__
from orchestrator.host import api
from orchestrator.host.backends.container import Launcher
from orchestrator.host.backends.executor import Executor
from orchestrator.host.backends.kubernetes.jobs import KubernetesOptions
from orchestrator.host.backends.local.docker import (
    DockerLauncher,
    LabelledContainers,
    client,
    image_id,
    image_labels,
    labelled_images,
    pinned_image,
    save_image,
)
from orchestrator.host.backends.local.executor import LocalExecutor
from orchestrator.host.backends.slurm.commands import SlurmCli
from orchestrator.host.backends.slurm.executor import SlurmExecutor
from orchestrator.host.catalog import HarnessImage, check_image_name, from_labels, image_for, pick_image, tasks_of
from orchestrator.host.compare.commands import register as register_compare
from orchestrator.host.data.prefetch import IMAGE_FORMATS, PrefetchItem, prefetch
from orchestrator.host.data.prefetched import verify
from orchestrator.host.plan import preflight
from orchestrator.host.records import store
from orchestrator.host.records.follow import follow
from orchestrator.host.records.report import literal, results_table
from orchestrator.host.records.results import read_results
from orchestrator.host.records.status import outcome, show_run, status_table
from orchestrator.host.records.status import wait as wait_for
from orchestrator.host.replay import Replay, check_same, load_replay, refuse_fixed_flags
from orchestrator.schema.container import LABEL_HARNESS
from orchestrator.schema.errors import EvalsError, InputError, ResultsParseError, printable
from orchestrator.schema.record import FINAL_STATES, RunRecord
from orchestrator.schema.resolve import RunRequest

app = typer.Typer(name="evals", add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Evaluate LLM and VLM endpoints with harnesses that run in their own containers.")
stdout = Console()
stderr = Console(stderr=True)


def _launcher() -> Launcher:
    return DockerLauncher()


def _executor(kind: str) -> Executor:
    """The executor of a run (a fake launcher or Slurm CLI replaces the real ones in unit tests)."""
    if kind == "slurm":
        return SlurmExecutor(SlurmCli(), LabelledContainers)
    return LocalExecutor(_launcher(), LabelledContainers())


def _images() -> list[HarnessImage]:
    seen: dict[str, HarnessImage] = {}
    for tag, labels in labelled_images(client(), LABEL_HARNESS):
        image = from_labels(tag, labels)
        seen.setdefault(image.harness, image)
    return sorted(seen.values(), key=lambda image: image.harness)


def _image(harness: str | None, image: str | None) -> HarnessImage:
    name = check_image_name(image) if image else image_for(harness or "")
    return from_labels(name, image_labels(client(), name))


def _pinned(replay: Replay) -> HarnessImage:
    """The image a results.yml ran in, by its content id (pulled by its registry digest when not here)."""
    labels = pinned_image(client(), name=replay.image, image_id=replay.image_digest,
                          repo_digest=replay.image_repo_digest)
    return replace(from_labels(replay.image, labels), digest=replay.image_digest)


@app.command("ls")
def list_tasks(as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False) -> None:
    """List every task of every built harness image (read from image labels)."""
    entries = tasks_of(_images())
    if as_json:
        print(json.dumps([asdict(entry) for entry in entries], indent=2))
        return
    if not entries:
        stderr.print("No evaluation images are built yet: build them with `make images`.")
        return
    table = Table("harness", "task", "endpoint types", "description")
    for entry in entries:
        table.add_row(entry.harness, entry.task, ", ".join(entry.endpoint_types), entry.description)
    stdout.print(table)


@app.command("run")
def run(
    eval_type: Annotated[list[str] | None, typer.Option("--eval_type", "--eval-type",
                                                        help="TASK or HARNESS.TASK; repeat for several tasks")] = None,
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
    overrides: Annotated[str | None, typer.Option("--overrides", help="'a.b=c,d.e=f' (YAML values)")] = None,
    harness: Annotated[str | None, typer.Option("--harness", help="lm-eval or vlmevalkit")] = None,
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
    resume: Annotated[str | None, typer.Option("--resume", help="resume run RUN_ID (same as `evals resubmit`)")] = None,
    from_results: Annotated[Path | None, typer.Option(
        "--from", help="run the evaluation a results.yml records again: same image id, same resolved config (the "
                       "task, model and config flags are refused)")] = None,
) -> None:
    """Run evaluations in their harnesses' containers, here or as Slurm jobs, and print their results."""
    _check_kubernetes(executor, dry_run=dry_run, manifests=manifests, results_claim=results_claim)
    if resume is not None:
        api.refuse_changes_on_resume(eval_type=eval_type, model_id=model_id, model_url=model_url,
                                     run_config=run_config, overrides=overrides, dry_run=dry_run,
                                     from_results=from_results)
        _resume(resume, wait=wait, time_limit=time_limit)
        return
    replay = load_replay(from_results) if from_results is not None else None
    if replay is not None:
        refuse_fixed_flags({"--eval_type": eval_type, "--model_id": model_id, "--model_url": model_url,
                            "--model_type": model_type, "--api_key_name": api_key_name, "--run_config": run_config,
                            "--overrides": overrides, "--harness": harness, "--image": image, "--offline": offline})
        eval_type, overrides, offline = [replay.eval_type], replay.overrides, replay.offline

    def choose(request: RunRequest) -> HarnessImage:
        if replay is not None:
            return _pinned(replay)
        return _image(harness, image) if harness or image else pick_image(_images(), api.eval_type_hint(request))

    planned = api.plan(eval_type=eval_type, model_id=model_id, model_url=model_url, model_type=model_type,
                       api_key_name=api_key_name, output_dir=output_dir, run_config=run_config, overrides=overrides,
                       data_dir=data_dir, offline=offline, cache_dir=cache_dir, data=data, network=network,
                       executor=executor, slurm_config=slurm_config, partition=partition, account=account,
                       time_limit=time_limit, gres=gres, gpus=gpus, container_runtime=container_runtime,
                       output_root=output_root, sbatch=sbatch, choose=choose)
    if replay is not None:
        check_same(replay, planned.tasks[0].plan.evaluation,
                   slurm=planned.record.slurm.config if planned.record.slurm else None)
    if executor == "kubernetes":
        _kubernetes(planned, KubernetesOptions(gpus=gpus, results_claim=results_claim), manifests)
        return
    if dry_run:
        sys.stdout.write(api.describe_run(planned))
        return

    def announce() -> None:
        record, tasks = planned.record, planned.tasks
        names = ", ".join(f"{p.image.harness}.{p.plan.evaluation.config.type}" for p in tasks)
        stderr.print(f"[bold]run {record.id}[/] ({record.executor}): " + escape(f"{names} in {', '.join(record.images)}"
                     + (f" -> {tasks[0].output_dir}" if len(tasks) == 1 else "")))

    record = api.start(planned, executor_for=_executor, check_endpoint=None if skip_preflight else preflight,
                       announce=announce, output=_output)
    _finish(record, wait=wait)


def _check_kubernetes(executor: str, *, dry_run: bool, manifests: Path | None, results_claim: str | None) -> None:
    if executor == "kubernetes" and not dry_run:
        raise InputError("--executor kubernetes only renders Job manifests; evals does not submit them",
                         hint="add --dry_run, then kubectl apply -f DIR")
    if executor != "kubernetes" and (manifests is not None or results_claim is not None):
        raise InputError("--manifests and --results_claim are for Kubernetes manifests",
                         hint="add --executor kubernetes --dry_run, or drop them")


def _kubernetes(planned: api.PlannedRun, options: KubernetesOptions, manifests: Path | None) -> None:
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


def _output(chunk: bytes) -> None:
    sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()


def _finish(record: RunRecord, *, wait: bool) -> None:
    """After start: a submitted Slurm run says how to follow it (or waits); a finished run shows its scores."""
    if record.executor == "slurm" and not wait and not record.done:
        stderr.print(f"follow with: evals status {record.id} | evals logs {record.id} --follow"
                     f" | evals cancel {record.id}")
        print(record.id)
        return
    if not record.done:
        record = wait_for(record, _executor(record.executor), report=lambda line: stderr.print(escape(line)))
    streamed = record.executor == "local"
    show_run(record, stdout, stderr, table=not streamed or len(record.tasks) > 1, tails=not streamed)
    outcome(record)


def _resume(run_id: str, *, wait: bool, time_limit: str | None) -> None:
    def announce(record: RunRecord) -> None:
        stderr.print(f"[bold]run {run_id}[/] ({record.executor}): resuming")

    record = api.resume(run_id, time_limit=time_limit, executor_for=_executor, announce=announce, output=_output)
    _finish(record, wait=wait)


@app.command("prefetch")
def prefetch_data(
    eval_type: Annotated[list[str] | None, typer.Option("--eval_type", "--eval-type",
                                                        help="TASK or HARNESS.TASK; repeat for several tasks")] = None,
    to: Annotated[Path | None, typer.Option("--to", help="new directory to write (whole or not at all)")] = None,
    images: Annotated[bool, typer.Option("--images", help="also docker save the images into DIR/images")] = False,
    image_format: Annotated[list[str] | None, typer.Option(
        "--image_format", "--image-format", help="images as docker-archive, enroot (.sqsh, needs enroot) or "
                                                 "apptainer (.sif, needs apptainer); repeatable; implies --images",
        click_type=click.Choice(list(IMAGE_FORMATS)))] = None,
    verify_dir: Annotated[Path | None, typer.Option("--verify", help="check a prefetched DIR against its manifest "
                                                                     "(sha256 of every file)")] = None,
    run_config: Annotated[Path | None, typer.Option("--run_config", "--run-config",
                                                    help="YAML run config (for its config.params.extra)")] = None,
    overrides: Annotated[str | None, typer.Option("--overrides", help="'a.b=c,d.e=f' (YAML values)")] = None,
    harness: Annotated[str | None, typer.Option("--harness", help="lm-eval or vlmevalkit")] = None,
    image: Annotated[str | None, typer.Option("--image", help="image to use (default evals/<harness>:latest)")] = None,
    network: Annotated[str, typer.Option("--network", help="auto (host for a Hub mirror on localhost), host, default",
                                         click_type=click.Choice(["auto", "host", "default"]))] = "auto",
) -> None:
    """Fetch everything some tasks need into a new directory, for `evals run --offline --data DIR` elsewhere."""
    if verify_dir is not None:
        if eval_type or to:
            raise InputError("--verify checks a directory; it takes no --eval_type or --to",
                             hint="give one or the other")
        manifest = verify(verify_dir)
        size = sum(entry.size for entry in manifest.files.values())
        tasks = ", ".join(f"{t.harness}.{t.task}" for t in manifest.tasks)
        stdout.print(f"{verify_dir}: {len(manifest.files)} files ({size / 1e6:.1f} MB) match the manifest; "
                     f"tasks: {tasks}" + (f"; images: {', '.join(i.image for i in manifest.images)}"
                                           if manifest.images else ""), soft_wrap=True)  # one line, however wide
        return
    if not eval_type or to is None:
        raise InputError("prefetch needs --eval_type TASK (repeatable) and --to DIR",
                         hint="e.g. evals prefetch --eval_type gsm8k --eval_type mmlu --to /shared/evals-data")
    items = []
    for task in eval_type:
        chosen = _image(harness, image) if harness or image else pick_image(_images(), task)
        items.append(PrefetchItem(image=chosen, eval_type=task, run_config=run_config, overrides=overrides))
    formats = tuple(image_format or (["docker-archive"] if images else []))
    engine = client()
    manifest = prefetch(items, to, launcher=_launcher(), output=_output, network=network,
                        save=lambda name, path: save_image(engine, name, path), image_formats=formats,
                        id_of=lambda name: image_id(engine, name), report=lambda line: stderr.print(escape(line)))
    size = sum(entry.size for entry in manifest.files.values())
    stderr.print(f"[bold]prefetched[/] {', '.join(f'{t.harness}.{t.task}' for t in manifest.tasks)} into {to} "
                 f"({len(manifest.files)} files, {size / 1e6:.1f} MB; manifest.json)")
    stderr.print(f"carry it over, then: evals prefetch --verify {to} && evals run --offline --data {to} ...")


@app.command("status")
def status(run_id: Annotated[str | None, typer.Argument(help="run id (default: the latest run)")] = None,
           as_json: Annotated[bool, typer.Option("--json", help="print the run record as JSON")] = False) -> None:
    """Show each task's state; the scores of finished tasks; the log tail of failed ones."""
    record = store.load(run_id or store.latest())
    record = _executor(record.executor).refresh(record)
    if as_json:
        print(record.model_dump_json(indent=2))
        return
    show_run(record, stdout, stderr)


@app.command("logs")
def logs(run_id: Annotated[str | None, typer.Argument(help="run id (default: the latest run)")] = None,
         task: Annotated[int | None, typer.Option("--task", help="only this task (index)")] = None,
         follow_: Annotated[bool, typer.Option("--follow", "-f", help="keep printing until the task ends")] = False,
         ) -> None:
    """Print the console output of a run's tasks (with --follow, as it is written)."""
    record = store.load(run_id or store.latest())
    chosen = [t for t in record.tasks if task is None or t.index == task]
    if not chosen:
        raise InputError(f"run {record.id} has no task {task}", hint=f"tasks: 0-{len(record.tasks) - 1}")
    run_executor = _executor(record.executor)
    for entry in chosen:
        if len(chosen) > 1:
            stderr.print(literal(f"== task {entry.index} ({entry.harness}.{entry.task}): {entry.log}", "bold"))

        def ended(index: int = entry.index) -> bool:
            nonlocal record
            if not follow_:
                return True
            record = run_executor.refresh(store.load(record.id))
            return record.tasks[index].state in FINAL_STATES

        follow(Path(record.tasks[entry.index].log), write=_output, finished=ended)


@app.command("cancel")
def cancel(run_id: Annotated[str, typer.Argument(help="run id")]) -> None:
    """Stop every unfinished task of a run (scancel for Slurm); no container is left running."""
    record = api.cancel(run_id, executor_for=_executor)
    stdout.print(status_table(record))


@app.command("resubmit")
def resubmit(run_id: Annotated[str, typer.Argument(help="run id")],
             wait: Annotated[bool, typer.Option("--wait", help="slurm: wait for the jobs, print the scores")] = False,
             time_limit: Annotated[str | None, typer.Option("--time", help="new Slurm time limit per job")] = None,
             ) -> None:
    """Start a run's failed, cancelled, timed-out or interrupted tasks again; answered requests come from the cache."""
    _resume(run_id, wait=wait, time_limit=time_limit)


@app.command("runs")
def list_runs() -> None:
    """List recorded runs (newest last) with their tasks' states; what is not a run is skipped with a warning."""
    records, skipped = store.scan()
    for reason in skipped:
        print(f"evals: warning: skipped {printable(reason)}", file=sys.stderr)
    table = Table("run", "executor", "created", "tasks")
    for record in records:
        states = ", ".join(f"{t.task}: {t.state}" for t in record.tasks)
        table.add_row(record.id, record.executor, f"{record.created_at:%Y-%m-%d %H:%M:%S}", literal(states))
    stdout.print(table)


@app.command("show")
def show(paths: Annotated[list[Path], typer.Argument(help="results.yml files or output directories")]) -> None:
    """Validate results.yml files and print their scores (a file over 4 MiB or 250,000 YAML nodes is refused)."""
    for path in paths:
        file = path / "results.yml" if path.is_dir() else path
        if not file.is_file():
            raise InputError(f"no results file {file}", hint="give a results.yml or the output directory holding one")
        try:
            results = read_results(file)
        except ResultsParseError as err:
            raise InputError(err.message, hint=err.hint) from None
        stdout.print(results_table(results, title=f"{results.framework_name} / {results.config.type}  ({file})"))


register_compare(app)  # evals compare, evals gate


@app.command("version")
def version() -> None:
    """Print the version."""
    print(__version__)


def main(argv: list[str] | None = None) -> int:
    """Entry point: usage errors and bad input print one line and return 2."""
    try:
        app(args=argv, prog_name="evals", standalone_mode=False)
    except click.UsageError as err:
        print(f"evals: error: {printable(err.format_message())} (see evals --help)", file=sys.stderr)
        return 2
    except EvalsError as err:
        print(f"evals: error: {err}", file=sys.stderr)
        return err.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        print("evals: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

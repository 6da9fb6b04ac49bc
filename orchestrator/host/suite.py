"""Planning `evals run --suite FILE`: every (model, task) pair resolved as one task of one run.

Each pair is a :class:`~orchestrator.schema.resolve.RunRequest` with the suite's layers (see
:mod:`orchestrator.schema.suite` for their order), resolved once with the image's framework as any task is. Every
problem of every pair (a model name given twice, an unknown task, an unbuilt image, an unset key variable, a pair
that resolves invalid) is collected and raised as one :class:`~orchestrator.schema.errors.ProblemsError` before
anything is written or started.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from orchestrator.host.catalog import HarnessImage, ImageCatalog, chosen_image, pick_image
from orchestrator.host.data.cache import DataAccess
from orchestrator.host.deploy.commands import render_server
from orchestrator.host.deploy.target import ROUTES, point_at_server
from orchestrator.host.exports.targets import problems as export_problems
from orchestrator.host.plan import ContainerRun, NetworkMode, plan_container_run, resolve_task
from orchestrator.schema.config import RunConfigLayer
from orchestrator.schema.deployment import Deployment, ServedDeployment, resolve_deployment
from orchestrator.schema.errors import EvalsError, ProblemsError
from orchestrator.schema.loading import load_model
from orchestrator.schema.merge import merge
from orchestrator.schema.record import SuiteRecord
from orchestrator.schema.resolve import RunRequest, request_layers
from orchestrator.schema.sanity import run_keys
from orchestrator.schema.suite import Suite, SuiteModel, SuiteTask, overrides_layer, suite_problems


@dataclass(frozen=True)
class PlannedSuite:
    """A suite's pairs planned as tasks of one run, and what the run record says of the suite."""

    tasks: list[ContainerRun]
    models: list[str]
    """The suite model's name of each task, in task order."""
    suite: SuiteRecord
    endpoint_limits: dict[str, int]
    served: ServedDeployment | None = None
    """The model server the run deploys (a model's ``deployment:``), if one does."""


def read_suite(path: Path) -> Suite:
    """The suite file, validated (errors at file:line)."""
    return load_model(Suite, path)


def pair_request(suite: Suite, model: SuiteModel, task: SuiteTask, *, offline: bool) -> RunRequest:
    """The request of one pair: the suite's layers, then the model's endpoint as explicit flags (they win)."""
    layers = [suite.defaults.layer(), overrides_layer(task.overrides, source=f"{task.eval_type} overrides")]
    if model.adapter_config is not None:
        layers.append(RunConfigLayer.model_validate(
            {"target": {"api_endpoint": {"adapter_config": model.adapter_config.model_dump(exclude_unset=True)}}}))
    layers.append(overrides_layer(model.overrides, source=f"{model.name} overrides"))
    return RunRequest(eval_type=task.eval_type, model_id=model.model_id, model_url=model.url,
                      model_type=model.model_type, api_key_name=model.api_key_name, offline=offline,
                      layers=tuple(layers))


def suite_server(suite: Suite, *, base: Path) -> ServedDeployment | None:
    """The server of the suite's deployed model (at most one, see ``suite_problems``), resolved and rendered once."""
    for model in suite.models:
        if model.deployed:
            deployment = resolve_deployment(model.deployment, base=base)
            if deployment is not None:
                command = render_server(deployment)
                return ServedDeployment(deployment=deployment, command=[*(command.entrypoint or []), *command.args])
    return None


def server_limits(deployment: Deployment, limit: int) -> dict[str, int]:
    """A deployed model's request limit on each route of its server (a task reaches it by its endpoint type)."""
    return {f"http://127.0.0.1:{deployment.port}{route}": limit for route in dict.fromkeys(ROUTES.values())}


def clip_parallelism(request: RunRequest, image: HarnessImage, limit: int | None) -> RunRequest:
    """The request with ``config.params.parallelism`` at most ``limit`` (the endpoint's most requests at once), as
    the pair's layers would set it (framework and task defaults included); unchanged when within it."""
    if limit is None or request.eval_type is None:
        return request
    framework = image.framework
    merged = merge(framework.defaults, framework.find_task(request.eval_type).defaults, *request_layers(request))
    params = merged.config.params if merged.config is not None else None
    wanted = params.parallelism if params is not None and params.parallelism is not None else 1
    if wanted <= limit:
        return request
    cap = RunConfigLayer.model_validate({"config": {"params": {"parallelism": limit}}})
    return replace(request, layers=(*request.layers, cap))


def _image(catalog: ImageCatalog, built: list[HarnessImage], task: SuiteTask) -> HarnessImage:
    if task.harness or task.image:
        return chosen_image(catalog, harness=task.harness, image=task.image)
    return pick_image(built, task.eval_type)


def _data_dir(suite: Suite, task: SuiteTask, base: Path) -> Path | None:
    given = task.data_dir or suite.defaults.data_dir
    return base / given if given else None


def plan_suite(suite: Suite, *, source: Path, catalog: ImageCatalog, run_id: str, root: Path,
               network: NetworkMode, data: DataAccess | None, offline: bool, check_keys: bool) -> PlannedSuite:
    """Every pair of ``suite`` (read from ``source``) planned into ``root/<model>/<harness>-<task>``; every problem
    found is raised at once. ``check_keys``: also refuse key variables unset here (not for a dry run)."""
    problems, served = _file_problems(suite, source)
    images = _images(suite, catalog, problems)
    planned: list[ContainerRun] = []
    models: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    limits = endpoint_limits(suite)
    deployed = next((model for model in suite.models if model.deployed), None)
    if served is not None and deployed is not None and deployed.max_parallel_requests is not None:
        limits |= server_limits(served.deployment, deployed.max_parallel_requests)
    for model, task in suite.pairs():
        image = images.get(suite.tasks.index(task))
        if image is None:
            continue
        try:
            request = pair_request(suite, model, task, offline=offline)
            if model.deployed:
                if served is None:  # its deployment is already a problem
                    continue
                request = point_at_server(request, image, served.deployment)
            request = clip_parallelism(request, image, limits.get(request.model_url or ""))
            plan = resolve_task(image, request, data=data)
            kind = plan.evaluation.config.type
            if (model.name, image.harness, kind) in seen:
                problems.append(f"{model.name} x {task.eval_type}: task {image.harness}.{kind} is given twice for "
                                "this model")
                continue
            seen.add((model.name, image.harness, kind))
            output_dir = (root / model.name / f"{image.harness}-{kind}").resolve()
            run = plan_container_run(image, plan, run_id=run_id, output_dir=output_dir, network=network,
                                     data_dir=_data_dir(suite, task, source.parent), data=data)
        except EvalsError as err:
            problems.append(f"{model.name} x {task.eval_type}: {err}")
            continue
        if check_keys:
            problems.extend(_unset_keys(run, model))
        planned.append(run)
        models.append(model.name)
    if problems:
        unique = list(dict.fromkeys(problems))
        raise ProblemsError(f"suite {source}: {len(unique)} problem(s); nothing was started", unique,
                            hint="fix them all, then run the suite again")
    record = SuiteRecord(name=suite.name, file=str(source.resolve()), models=[m.name for m in suite.models],
                         output_root=str(root.resolve()), export=suite.export)
    return PlannedSuite(planned, models, record, limits, served)


def _file_problems(suite: Suite, source: Path) -> tuple[list[str], ServedDeployment | None]:
    """What is wrong before any pair resolves (the file's own problems, its export, its server), and the server."""
    problems = suite_problems(suite)
    if suite.export is not None:
        problems.extend(f"export: {line}" for line in export_problems(suite.export))
    try:
        return problems, suite_server(suite, base=source.parent)
    except EvalsError as err:
        return [*problems, f"deployment: {err}"], None


def _images(suite: Suite, catalog: ImageCatalog, problems: list[str]) -> dict[int, HarnessImage]:
    """Each task's image, by task index; a task whose image cannot be found is a problem (appended)."""
    built = catalog.images()
    images: dict[int, HarnessImage] = {}
    for index, task in enumerate(suite.tasks):
        try:
            images[index] = _image(catalog, built, task)
        except EvalsError as err:
            problems.append(f"tasks[{index}] {task.eval_type}: {err}")
    return images


def endpoint_limits(suite: Suite) -> dict[str, int]:
    """Endpoint URL -> the most requests at once; models sharing a URL share its smallest limit."""
    limits: dict[str, int] = {}
    for model in suite.models:
        if model.max_parallel_requests is not None and model.url is not None:
            limits[model.url] = min(limits.get(model.url, model.max_parallel_requests), model.max_parallel_requests)
    return limits


def _unset_keys(run: ContainerRun, model: SuiteModel) -> list[str]:
    problems = []
    for key in run_keys(run.plan.evaluation):
        if not os.environ.get(key.name):
            named_by = (f"api_key_name of model {model.name}" if key.where == "target.api_endpoint.api_key"
                        else key.where)
            problems.append(f"environment variable {key.name} (named by {named_by}) is not set: "
                            f"export {key.name}=<the key>")
    return problems

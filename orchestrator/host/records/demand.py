"""What a recorded task asks of its endpoint, read from its resolved config: the endpoint's URL, how many requests
it sends at once (``config.params.parallelism``) and how many samples it evaluates (``config.params.limit_samples``).

The local executor's endpoint limits and the live progress read it; a task recorded before the host resolved for
the container (no ``resolved_config``) asks one request at a time of an unknown endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.schema.config import Evaluation
from orchestrator.schema.errors import ConfigError
from orchestrator.schema.loading import parse_yaml, validate
from orchestrator.schema.record import TaskRecord


@dataclass(frozen=True, kw_only=True)
class Demand:
    """One task's use of its endpoint."""

    url: str | None
    """target.api_endpoint.url (None: not recorded)."""
    model_id: str | None
    """target.api_endpoint.model_id: the model's name as the endpoint serves it."""
    parallelism: int
    """config.params.parallelism: the task's requests in flight at most."""
    limit_samples: int | None
    """config.params.limit_samples, when set: the samples the task evaluates (per repeat)."""


def task_demand(task: TaskRecord) -> Demand:
    """The task's demand, from its recorded resolved config (an unreadable one counts as one request, no URL)."""
    if task.resolved_config is None:
        return Demand(url=None, model_id=None, parallelism=1, limit_samples=None)
    try:
        doc = parse_yaml(task.resolved_config, source=f"task {task.index}'s resolved config")
        evaluation = validate(Evaluation, doc.data, doc=doc)
    except ConfigError:
        return Demand(url=None, model_id=None, parallelism=1, limit_samples=None)
    params = evaluation.config.params
    endpoint = evaluation.target.api_endpoint
    return Demand(url=endpoint.url, model_id=endpoint.model_id, parallelism=params.parallelism,
                  limit_samples=params.limit_samples)

"""The framework definition file (framework.yml), in the format NVIDIA's harness wheels use.

``framework`` describes the harness, ``defaults`` holds the command template and the
lowest-priority config, and ``evaluations`` lists the tasks with their own defaults.
``passthrough`` (our extension, optional) lets ``<harness>.<task>`` run a task the file
does not list, handing its name to the harness as ``config.params.task``.
"""

from __future__ import annotations

import difflib
import re

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.schema.config import DefaultsLayer, EndpointType
from orchestrator.schema.errors import UnknownTaskError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FrameworkInfo(_Strict):
    """Who the harness is."""

    name: str = Field(description="Harness name, used as the prefix in --eval_type harness.task.", min_length=1)
    pkg_name: str = Field(description="Package name (also accepted as the --eval_type prefix).", min_length=1)
    full_name: str = Field(description="Human-readable harness name.")
    description: str = Field(description="What the harness does.")
    url: str = Field(description="Upstream project URL.")
    source: str | None = Field(default=None, description="Where this packaging's source lives.")


class TaskDefinition(_Strict):
    """One task the harness offers (an entry of ``evaluations``)."""

    name: str = Field(description="Display name of the task.")
    description: str = Field(description="What the task measures.")
    defaults: DefaultsLayer = Field(description="Task defaults; must set config.type, the task's id.")

    @property
    def type(self) -> str:
        """The task id users pass as --eval_type."""
        assert self.defaults.config is not None and self.defaults.config.type is not None
        return self.defaults.config.type

    @property
    def endpoint_types(self) -> list[EndpointType]:
        """Endpoint types this task declares (empty: inherits the framework's)."""
        config = self.defaults.config
        return list(config.supported_endpoint_types or []) if config else []


class Passthrough(_Strict):
    """How a task the file does not list is run when asked for as ``<harness>.<task>``."""

    description: str = Field(description="What a passthrough task is, shown by ls.")
    supported_endpoint_types: list[EndpointType] = Field(description="Endpoint types a passthrough task may use.")


class FrameworkDefinition(_Strict):
    """A whole framework.yml."""

    framework: FrameworkInfo = Field(description="Who the harness is.")
    defaults: DefaultsLayer = Field(description="Framework defaults, the lowest-priority layer; holds the command.")
    evaluations: list[TaskDefinition] = Field(description="The tasks.", min_length=1)
    passthrough: Passthrough | None = Field(default=None, description="Running unlisted tasks by harness name.")

    @model_validator(mode="after")
    def _check(self) -> FrameworkDefinition:
        if not self.defaults.command:
            raise ValueError("defaults.command (the harness command template) is required")
        seen: set[str] = set()
        for index, task in enumerate(self.evaluations):
            config = task.defaults.config
            if config is None or not config.type:
                raise ValueError(f"evaluations[{index}] ({task.name}) has no defaults.config.type")
            if config.type in seen:
                raise ValueError(f"task {config.type!r} is defined twice")
            seen.add(config.type)
        return self

    @property
    def task_names(self) -> list[str]:
        """Task ids in file order."""
        return [task.type for task in self.evaluations]

    def prefixes(self) -> set[str]:
        """Names accepted before the dot in ``--eval_type harness.task``."""
        return {self.framework.name, self.framework.pkg_name}

    def find_task(self, eval_type: str) -> TaskDefinition:
        """The task ``eval_type`` names (``task`` or ``harness.task``); unknown tasks list close matches."""
        prefix, dot, name = eval_type.partition(".")
        explicit = bool(dot) and prefix in self.prefixes()
        if not explicit:
            name = eval_type
            if dot and prefix not in self.prefixes() and eval_type not in self.task_names:
                raise UnknownTaskError(
                    f"unknown harness {prefix!r} in --eval_type {eval_type!r}",
                    hint=f"this image runs {self.framework.name}; use {self.framework.name}.<task> or just <task>",
                )
        for task in self.evaluations:
            if task.type == name:
                return task
        if explicit and self.passthrough is not None:
            return self._passthrough_task(name)
        raise UnknownTaskError(f"unknown task {name!r} for {self.framework.name}", hint=self._task_hint(name))

    def _task_hint(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.task_names, n=5, cutoff=0.5)
        hint = f"did you mean: {', '.join(close)}? " if close else ""
        hint += "list tasks with `ls`"
        if self.passthrough is not None:
            hint += f"; any other {self.framework.name} task runs as {self.framework.name}.{name}"
        return hint

    def _passthrough_task(self, name: str) -> TaskDefinition:
        assert self.passthrough is not None
        if not _TASK_NAME.fullmatch(name):
            raise UnknownTaskError(f"{name!r} is not a valid task name", hint="use letters, digits, _ - and .")
        defaults = DefaultsLayer.model_validate({"config": {
            "type": name,
            "supported_endpoint_types": list(self.passthrough.supported_endpoint_types),
            "params": {"task": name},
        }})
        return TaskDefinition(name=name, description=self.passthrough.description, defaults=defaults)


_TASK_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")

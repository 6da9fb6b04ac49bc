"""The `evals export` flags of each target's settings, and the command that retries one target.

The CLI builds an :class:`~orchestrator.schema.tracking.ExportConfig` from these flags; a failed target prints the
command line that exports it again with the same settings (:func:`retry_command`), whether the settings came from
flags, an ``--config`` file or a suite's ``export:`` section.
"""

from __future__ import annotations

import difflib
import shlex
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.schema.errors import InputError
from orchestrator.schema.loading import validation_error
from orchestrator.schema.tracking import TARGETS, ExportConfig, TargetName

FLAGS: dict[TargetName, dict[str, str]] = {
    "csv": {"path": "--csv_path"},
    "json": {"path": "--json_path"},
    "mlflow": {"tracking_uri": "--mlflow_uri", "experiment": "--mlflow_experiment", "run_name": "--mlflow_run_name",
               "tags": "--mlflow_tag", "token_name": "--mlflow_token_name"},
    "wandb": {"project": "--wandb_project", "entity": "--wandb_entity", "mode": "--wandb_mode",
              "dir": "--wandb_dir", "api_key_name": "--wandb_api_key_name"},
}
"""Per target, the flag of each of its settings (``--mlflow_tag KEY=VALUE`` repeats, one per tag)."""

PATHS = {("csv", "path"), ("json", "path"), ("wandb", "dir")}
"""Settings that are paths relative to the export's base directory (absolute in a retry command)."""


def retry_command(sources: list[str], name: TargetName, config: ExportConfig, *, base_dir: Path) -> str:
    """``evals export SOURCES --to NAME`` with the flags of NAME's settings that differ from the defaults."""
    section = config.model_dump(by_alias=True, exclude_defaults=True)[name]
    args = ["evals", "export", *sources, "--to", name]
    for key, value in section.items():
        flag = FLAGS[name][key]
        if isinstance(value, dict):
            for tag, text in value.items():
                args += [flag, f"{tag}={text}"]
        elif (name, key) in PATHS and value != "-":
            args += [flag, str(base_dir / value)]
        else:
            args += [flag, str(value)]
    return shlex.join(args)


def target_names(given: list[str]) -> list[TargetName]:
    """The targets ``--to`` names, each once, in the order given; an unknown one is bad input."""
    names: list[TargetName] = []
    for name in given:
        if name not in TARGETS:
            close = difflib.get_close_matches(name, TARGETS, n=1)
            raise InputError(f"--to {name}: no such target" + (f"; did you mean {close[0]}?" if close else ""),
                             hint="targets: " + ", ".join(TARGETS))
        if name not in names:
            names.append(name)
    return names


def build_config(*, base: ExportConfig | None, to: list[str], flags: dict[str, Any], default_stem: str) -> ExportConfig:
    """The settings of an export: ``base`` (a --config file) narrowed to ``to`` (default: all its targets), with
    the values of ``flags`` (flag -> value, None when not given) over them. A flag of a target that is not exported
    is bad input; csv and json default to ``default_stem``.csv and .json."""
    names = target_names(to) if to else (base.names if base else [])
    if not names:
        raise InputError("no target", hint="give --to csv|json|mlflow|wandb (repeat for several), or --config FILE")
    data: dict[str, dict[str, Any]] = base.model_dump(by_alias=True, exclude_none=True) if base else {}
    for name, settings in FLAGS.items():
        for key, flag in settings.items():
            value = flags.get(flag)
            if value is None or value == []:
                continue
            if name not in names:
                raise InputError(f"{flag} is a setting of the {name} target, which is not exported",
                                 hint=f"add --to {name}, or leave {flag} out")
            section = data.setdefault(name, {})
            section[key] = {**section.get("tags", {}), **_tags(flag, value)} if key == "tags" else value
    for name in ("csv", "json"):
        data.setdefault(name, {"path": f"{default_stem}.{name}"})
    try:
        return ExportConfig.model_validate({name: data.get(name, {}) for name in names})
    except ValidationError as err:
        raise validation_error(err, model=ExportConfig, doc=None, source="export settings") from None


def _tags(flag: str, given: list[str]) -> dict[str, str]:
    tags = {}
    for item in given:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"{flag} {item!r}: expected KEY=VALUE", hint=f"e.g. {flag} team=eval")
        tags[key] = value
    return tags

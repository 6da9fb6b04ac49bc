"""Checks on a resolved run that the schema's types cannot express, made before anything runs or is written.

Whatever ``--dry_run`` accepts must run, so every check here is part of resolving a run:

- **key variables**: the endpoint's ``api_key`` and every other value a config names as a key (any key
  ``api_key``/``api_key_name`` or ending in ``_api_key``/``_api_key_name``, at any depth of
  ``config.params.extra``: a judge's, a user simulator's) must be an environment variable NAME. A value
  that is not one is refused without being shown: it is most likely the key itself.
- **values a process cannot take**: a NUL byte in any string (no argument, variable or file name can hold
  one) and non-finite numbers (``.inf``, ``.nan``) anywhere in the config.
- **the argument limit**: see :data:`MAX_COMMAND_BYTES`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.schema.errors import InputError

if TYPE_CHECKING:
    from orchestrator.schema.config import Evaluation

KEY_FIELDS = ("api_key", "api_key_name")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

MAX_COMMAND_BYTES = 120_000
"""The longest rendered harness command. Linux refuses any single argument over 128 KiB (MAX_ARG_STRLEN) with
E2BIG; the command is one argument of ``bash -c``, so a longer one could never start. Values this big belong in
files (a task YAML directory, a run config the harness reads)."""


@dataclass(frozen=True)
class KeyVariable:
    """An environment variable that holds a key, and where the config names it."""

    name: str
    where: str


def is_key_field(field: str) -> bool:
    """``api_key``, ``api_key_name``, ``judge_api_key``, ...: a field whose value names a key's variable."""
    return any(field == name or field.endswith(f"_{name}") for name in KEY_FIELDS)


def key_variables(endpoint_key: str | None, extra: dict[str, Any]) -> list[KeyVariable]:
    """The endpoint's key variable and every key variable ``config.params.extra`` names, each once."""
    found = [KeyVariable(endpoint_key, "target.api_endpoint.api_key")] if endpoint_key else []
    found += list(_extra_keys(extra, "config.params.extra"))
    unique: dict[str, KeyVariable] = {}
    for key in found:
        unique.setdefault(key.name, key)
    return list(unique.values())


def run_keys(evaluation: Evaluation) -> list[KeyVariable]:
    """:func:`key_variables` of a resolved run."""
    return key_variables(evaluation.target.api_endpoint.api_key, evaluation.config.params.extra)


def unset_key(keys: list[KeyVariable], environ: Mapping[str, str]) -> InputError | None:
    """The error for the first key variable not set in ``environ`` (None when all are)."""
    for key in keys:
        if not environ.get(key.name):
            named_by = "--api_key_name" if key.where == "target.api_endpoint.api_key" else key.where
            return InputError(f"environment variable {key.name} (named by {named_by}) is not set",
                              hint=f"export {key.name}=<the key>" + (", or drop --api_key_name for an endpoint "
                                                                     "without auth" if named_by == "--api_key_name"
                                                                     else ""))
    return None


def _extra_keys(value: Any, path: str) -> Iterator[KeyVariable]:
    if isinstance(value, dict):
        for name, item in value.items():
            where = f"{path}.{name}"
            if is_key_field(str(name)) and item is not None:
                if not (isinstance(item, str) and _ENV_NAME.fullmatch(item)):
                    raise InputError(f"{where} must be the NAME of an environment variable that holds the key "
                                     "(letters, digits and _, not starting with a digit); the value given is not "
                                     "shown, as it may be the key itself",
                                     hint=f"export the key as a variable, e.g. JUDGE_API_KEY, and set {where}: "
                                          "JUDGE_API_KEY")
                yield KeyVariable(item, where)
            else:
                yield from _extra_keys(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _extra_keys(item, f"{path}[{index}]")


def check_values(data: Any, path: str = "") -> None:
    """No NUL byte in any string and no non-finite number anywhere in ``data`` (keys included)."""
    if isinstance(data, dict):
        for name, item in data.items():
            where = f"{path}.{name}" if path else str(name)
            check_values(name, where)
            check_values(item, where)
    elif isinstance(data, list):
        for index, item in enumerate(data):
            check_values(item, f"{path}[{index}]")
    elif isinstance(data, str):
        if "\x00" in data:
            raise InputError(f"{path}: contains a NUL byte, which no command line, variable or file name can hold",
                             hint="remove it")
    elif isinstance(data, float) and not math.isfinite(data):
        raise InputError(f"{path}: {data} is not a finite number", hint="give a finite number, or leave it out")


def check_command(command: str, *, what: str = "command") -> None:
    """A rendered command must fit in one process argument (see :data:`MAX_COMMAND_BYTES`)."""
    size = len(command.encode())
    if size > MAX_COMMAND_BYTES:
        raise InputError(f"the rendered {what} is {size} bytes, over the {MAX_COMMAND_BYTES}-byte limit of one "
                         "argument (Linux refuses arguments over 128 KiB)",
                         hint="pass large values in files (e.g. a task YAML under --data_dir) instead of inline")

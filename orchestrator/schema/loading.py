"""Reading YAML into the contract's models, with errors that point at file:line.

Every YAML file the project reads goes through :func:`load_model` (or :func:`parse_yaml` for text), so a
malformed file, a duplicate key, an unknown key or a wrong type always fails the same way: one
:class:`~orchestrator.schema.errors.ConfigError` naming the file, the line and the key. Reading is
bounded: each kind of file has stated limits (size, nodes after alias expansion, depth; see
:mod:`orchestrator.schema.limits`), non-UTF-8 text and recursive aliases are refused.
"""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from orchestrator.schema.errors import ConfigError
from orchestrator.schema.limits import CONFIG_LIMITS, BoundedComposer, Limits, check_text_size, read_text
from orchestrator.schema.sanity import is_key_field

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]


class YamlDocument:
    """Parsed YAML plus the node tree, to find the line of any key path."""

    def __init__(self, data: Any, root: yaml.Node | None, source: str) -> None:
        self.data = data
        self.root = root
        self.source = source

    def where(self, loc: Loc) -> str:
        """``source:line`` of the deepest node on ``loc`` that exists."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else None
        for part in loc:
            node = _child(node, part)
            if node is None:
                break
            line = node.start_mark.line + 1
        return f"{self.source}:{line}" if line else self.source


def _child(node: yaml.Node | None, part: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == part:
                found: yaml.Node = value if not isinstance(value, yaml.ScalarNode) or value.value else key
                return found
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        child: yaml.Node = node.value[part]
        return child
    return None


def _check_duplicates(root: yaml.Node | None, source: str) -> None:
    """Refuse a mapping that repeats a key; each node is visited once (aliases share nodes)."""
    pending, seen_nodes = [root], set()
    while pending:
        node = pending.pop()
        if node is None or id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in keys:
                        raise ConfigError(
                            f"duplicate key {key.value!r}", where=f"{source}:{key.start_mark.line + 1}",
                            hint="keep one of them",
                        )
                    keys.add(key.value)
                pending.append(value)
        elif isinstance(node, yaml.SequenceNode):
            pending.extend(node.value)


def parse_yaml(text: str, *, source: str, limits: Limits = CONFIG_LIMITS) -> YamlDocument:
    """Parse one YAML document within ``limits``; every failure is one ConfigError at file:line."""
    check_text_size(text, source=source, limits=limits)
    loader: BoundedComposer | None = None
    try:
        loader = BoundedComposer(text, source=source, limits=limits)  # refuses characters YAML does not allow
        root = loader.get_single_node()
        _check_duplicates(root, source)
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError(f"malformed YAML: {err.problem or err.context}", where=where,
                          hint="fix the YAML syntax") from None
    except yaml.reader.ReaderError as err:  # a character YAML does not allow (NUL, other control characters)
        line = text.count("\n", 0, err.position) + 1
        raise ConfigError(f"malformed YAML: character {chr(err.character)!r} is not allowed",
                          where=f"{source}:{line}", hint="is it a text file? remove control characters") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"malformed YAML: {str(err).splitlines()[0]}", where=source,
                          hint="fix the YAML syntax") from None
    finally:
        if loader is not None:
            loader.dispose()
    return YamlDocument(data, root, source)


def read_yaml(path: Path, *, limits: Limits = CONFIG_LIMITS) -> YamlDocument:
    """Read and parse a YAML file within ``limits``; an unreadable, oversize or non-UTF-8 file is a ConfigError."""
    return parse_yaml(read_text(path, limits=limits), source=str(path), limits=limits)


def validate(model: type[M], data: Any, *, doc: YamlDocument | None = None, source: str = "") -> M:
    """Validate ``data`` into ``model``; the first error becomes a one-line ConfigError."""
    if data is None:
        data = {}
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise validation_error(err, model=model, doc=doc, source=source) from None


def load_model(model: type[M], path: Path, *, limits: Limits = CONFIG_LIMITS) -> M:
    """Read a YAML file (within ``limits``: a config file's unless told) and validate it into ``model``."""
    doc = read_yaml(path, limits=limits)
    if doc.data is not None and not isinstance(doc.data, dict):
        raise ConfigError("expected a mapping at the top level", where=doc.where(()))
    return validate(model, doc.data, doc=doc, source=str(path))


def validation_error(err: ValidationError, *, model: type[BaseModel], doc: YamlDocument | None,
                     source: str) -> ConfigError:
    """Turn pydantic's first error into one line: where, which key, what is wrong, how to fix."""
    first = err.errors()[0]
    loc: Loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and "[" in p))
    key = ".".join(str(p) for p in loc) or "(top level)"
    where = doc.where(loc) if doc is not None else source or None
    if first["type"] == "extra_forbidden":
        allowed = sorted(allowed_keys(model, loc[:-1]))
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        hint += f"allowed here: {', '.join(allowed)}"
        if "params" in loc[:-1]:
            hint += "; harness-specific keys go under config.params.extra"
        return ConfigError(f"unknown key {key!r}", where=where, hint=hint)
    if first["type"] == "missing":
        return ConfigError(f"missing required key {key!r}", where=where)
    message = first["msg"].removeprefix("Value error, ")
    if loc and is_key_field(str(loc[-1])):  # never echo what may be a key
        return ConfigError(f"{key}: {message}", where=where)
    shown = repr(first.get("input"))
    shown = shown if len(shown) <= 80 else f"{shown[:60]}... ({len(shown)} characters)"
    return ConfigError(f"{key}: {message} (got {shown})", where=where)


def allowed_keys(model: type[BaseModel], loc: Loc) -> set[str]:
    """Field names (and aliases) accepted at ``loc`` inside ``model``."""
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int):
            continue
        if current is None or part not in current.model_fields:
            return set()
        current = _model_in(current.model_fields[part].annotation)
    if current is None:
        return set()
    names = set(current.model_fields)
    for field in current.model_fields.values():
        choices = getattr(field.validation_alias, "choices", None)
        names.update(str(c) for c in choices or ())
    return names


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (commands) as literal blocks; long lines never folded."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and all(line == line.rstrip() for line in value.splitlines()) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def dump_yaml(data: Any) -> str:
    """YAML text for ``data``: block style, keys in the order given, unicode kept."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False,
                     width=1_000_000)

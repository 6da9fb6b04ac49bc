"""How much of a file the project reads, and the bounded reading that enforces it.

Every YAML or JSON file is read through :func:`read_text` (at most ``max_bytes``, UTF-8 only) and every
YAML document is composed by :class:`BoundedComposer`, which refuses, before anything is built from it:

- more than ``max_nodes`` nodes once aliases are expanded (a "billion laughs" file of a few hundred bytes
  expands to 10^9 nodes: it is refused as soon as one node's expansion passes the limit);
- an alias that refers to a node containing it (``&a [*a]``: a recursive structure);
- nesting deeper than ``max_depth`` levels;
- an integer literal longer than :data:`MAX_INT_DIGITS` characters;
- the explicit tags ``!!binary``, ``!!set``, ``!!omap`` and ``!!pairs`` (values are JSON's types, and dates).

The limits of each kind of file are stated below; a file over one is bad input (:class:`LimitError`, exit 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from orchestrator.schema.errors import ConfigError

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """The most one file of a kind may hold."""

    kind: str
    """What the file is, for messages ("config file")."""
    max_bytes: int
    """Size of the file."""
    max_nodes: int
    """YAML nodes (scalars, sequences, mappings) after every alias is expanded."""
    max_depth: int = 64
    """Nesting of sequences and mappings."""


CONFIG_LIMITS = Limits("config file", max_bytes=1 * MIB, max_nodes=100_000)
"""Run configs (``--run_config``), framework.yml files (also read from image labels), Slurm configs
(``--slurm_config``) and each ``--overrides`` value: 1 MiB, 100,000 nodes, 64 levels."""

RECORD_LIMITS = Limits("run record", max_bytes=4 * MIB, max_nodes=250_000)
"""A run record (``<state dir>/runs/<id>/run.yml``): 4 MiB, 250,000 nodes, 64 levels."""

RESULTS_LIMITS = Limits("results file", max_bytes=4 * MIB, max_nodes=250_000)
"""A results.yml (``evals show``, ``evals status``, the end of a run): 4 MiB, 250,000 nodes, 64 levels."""

MANIFEST_LIMITS = Limits("prefetch manifest", max_bytes=64 * MIB, max_nodes=0)
"""A prefetched directory's manifest.json (one entry per file): 64 MiB; JSON, so only the size applies."""


class LimitError(ConfigError):
    """A file is over one of its stated limits (size, nodes after alias expansion, depth) or is recursive."""


def _size(count: int) -> str:
    return f"{count / MIB:g} MiB" if count >= MIB else f"{count} bytes"


def read_text(path: Path, *, limits: Limits) -> str:
    """The file as text: at most ``limits.max_bytes`` read, UTF-8 only; any failure is one ConfigError naming it.

    Reading stops one byte past the limit, so ``/dev/zero`` or a growing file cannot exhaust memory.
    """
    try:
        with path.open("rb") as handle:
            raw = handle.read(limits.max_bytes + 1)
    except FileNotFoundError:
        raise ConfigError("file not found", where=str(path), hint="check the path") from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a file", where=str(path), hint="check the path") from None
    except OSError as err:
        raise ConfigError(f"cannot read file: {err.strerror or type(err).__name__}", where=str(path)) from None
    except ValueError:  # a NUL byte in the path (a path read from a file)
        raise ConfigError("cannot read file: its path contains a NUL byte", where=repr(str(path))) from None
    if len(raw) > limits.max_bytes:
        raise LimitError(f"larger than {_size(limits.max_bytes)}, the limit for a {limits.kind}", where=str(path),
                         hint="is it the right file?")
    return decode_utf8(raw, source=str(path))


def decode_utf8(raw: bytes, *, source: str) -> str:
    """``raw`` as UTF-8; the first byte that is not names its line."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise ConfigError(f"not UTF-8 text (byte 0x{raw[err.start]:02x}, {err.reason})", where=f"{source}:{line}",
                          hint="save the file as UTF-8") from None


def check_text_size(text: str, *, source: str, limits: Limits) -> None:
    """Text that did not come from a file (an image label, an ``--overrides`` value) obeys the same size limit."""
    if len(text) > limits.max_bytes:
        raise LimitError(f"longer than {_size(limits.max_bytes)}, the limit for a {limits.kind}", where=source)


_INT_TAG = "tag:yaml.org,2002:int"
MAX_INT_DIGITS = 100
"""Longest integer literal (Python refuses to convert one over 4300 digits; no setting needs 100)."""
_NOT_JSON_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in ("binary", "set", "omap", "pairs"))
"""Explicit tags whose values (bytes, sets, ordered pairs) no file of the project has a place for."""


class BoundedComposer(yaml.SafeLoader):
    """PyYAML's safe loader composing within :class:`Limits` (see the module docstring)."""

    def __init__(self, text: str, *, source: str, limits: Limits) -> None:
        super().__init__(text)
        self.source = source
        self.limits = limits
        self._depth = 0
        self._open: set[str] = set()
        """Anchors of the collections being composed: an alias to one of them is recursive."""
        self._sizes: dict[int, int] = {}
        """id(node) -> how many nodes it stands for once aliases are expanded."""

    def _where(self, event: yaml.Event) -> str:
        mark = event.start_mark
        return f"{self.source}:{mark.line + 1}" if mark is not None else self.source

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]  # (untyped in types-PyYAML)
        anchor = event.anchor if isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent)) else None
        if isinstance(event, yaml.AliasEvent) and event.anchor in self._open:
            raise LimitError(f"recursive alias *{event.anchor}: it refers to a node that contains it",
                             where=self._where(event), hint="a config cannot contain itself")
        if self._depth >= self.limits.max_depth:
            raise LimitError(f"nested deeper than {self.limits.max_depth} levels, the limit for a {self.limits.kind}",
                             where=self._where(event))
        if anchor is not None:
            self._open.add(anchor)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open.discard(anchor or "")
        if node is not None:
            if node.tag in _NOT_JSON_TAGS:
                raise ConfigError(f"tag !!{node.tag.rsplit(':', 1)[-1]} is not allowed: values are strings, numbers, "
                                  "booleans, null, lists and mappings", where=self._where(event),
                                  hint="write the value as a string")
            if node.tag == _INT_TAG and len(node.value) > MAX_INT_DIGITS:
                raise LimitError(f"an integer of {len(node.value)} characters, over the limit of {MAX_INT_DIGITS}",
                                 where=self._where(event))
            self._count(node, event)
        return node

    def _count(self, node: yaml.Node, event: yaml.Event) -> None:
        """Record the node's expanded size (an alias's is already known); refuse it past ``max_nodes``."""
        if id(node) in self._sizes:
            size = self._sizes[id(node)]
        else:
            if isinstance(node, yaml.SequenceNode):
                children = list(node.value)
            elif isinstance(node, yaml.MappingNode):
                children = [child for pair in node.value for child in pair]
            else:
                children = []
            size = 1 + sum(self._sizes[id(child)] for child in children)
            self._sizes[id(node)] = size
        if size > self.limits.max_nodes:
            raise LimitError(f"expands to more than {self.limits.max_nodes:,} nodes (aliases included), the limit "
                             f"for a {self.limits.kind}", where=self._where(event),
                             hint="each use of an alias counts every node it refers to")

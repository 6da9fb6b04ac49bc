"""The contract's fingerprint: sha256 over the committed JSON Schemas, computed once per process.

The package version changes only at releases; the fingerprint changes with any field of any model (a test keeps
the committed schemas current). The host passes its fingerprint to the container with the run it resolved, and
the runtime refuses a run from a host with another one: its image was built before (or after) a contract change.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

SCHEMA_DIR = Path(__file__).parent / "jsonschema"
"""The committed JSON Schemas (``make schema`` writes them)."""


@cache
def fingerprint() -> str:
    """sha256 (hex) over every ``*.schema.json``, by name, in name order."""
    digest = hashlib.sha256()
    for path in sorted(SCHEMA_DIR.glob("*.schema.json")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def short(value: str) -> str:
    """A fingerprint as messages show it: its first 12 hex digits."""
    return value[:12]

"""Merging config layers: one pure function, the same on the host and in the image.

Priority, lowest to highest: framework defaults < task defaults < --run_config YAML <
explicit flags < --overrides. A higher layer's value replaces a lower one's; mappings merge
key by key; a null never erases a lower value.
"""

from __future__ import annotations

from typing import Any

from orchestrator.schema.config import DefaultsLayer, RunConfigLayer


def merge_values(lower: Any, higher: Any) -> Any:
    """Merge two plain values: dicts key by key, ``None`` keeps ``lower``, anything else replaces it."""
    if higher is None:
        return lower
    if isinstance(lower, dict) and isinstance(higher, dict):
        merged = dict(lower)
        for key, value in higher.items():
            merged[key] = merge_values(lower.get(key), value) if key in lower else value
        return merged
    return higher


def merge(*layers: RunConfigLayer) -> DefaultsLayer:
    """Merge layers given lowest priority first into one partial config."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = merge_values(merged, layer.model_dump(exclude_unset=True))
    return DefaultsLayer.model_validate(merged)

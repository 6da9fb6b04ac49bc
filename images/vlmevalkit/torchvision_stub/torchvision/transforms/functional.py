"""Stand-in for ``torchvision.transforms.functional`` (see ``torchvision/__init__.py``)."""

from __future__ import annotations

from torchvision import Unavailable, placeholder


def __getattr__(name: str) -> Unavailable:
    return placeholder(__name__, name)

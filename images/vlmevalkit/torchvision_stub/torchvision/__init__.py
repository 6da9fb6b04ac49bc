"""A stand-in for torchvision in this API-only image: it imports, and any use fails with a clear error.

VLMEvalKit imports ``torchvision.transforms`` at module level in dataset and local-model modules it loads
eagerly (``import vlmeval`` pulls them all in), but evaluating an API endpoint never calls them. PyPI's
torchvision is built against PyPI's CUDA torch and does not import beside the CPU torch this image has
("operator torchvision::nms does not exist"). It has no package metadata, so libraries that check for
torchvision before using it (transformers) see it as absent.
"""

from __future__ import annotations

from typing import NoReturn

MESSAGE = ("torchvision is not installed in this API-only VLMEvalKit image: {name} is only needed to run models "
           "locally or for video datasets, which this image does not support")


class Unavailable:
    """Any torchvision object: attributes resolve to more of the same, calling one raises."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Unavailable:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return Unavailable(f"{self._name}.{attribute}")

    def __call__(self, *args: object, **kwargs: object) -> NoReturn:
        raise RuntimeError(MESSAGE.format(name=self._name))

    def __repr__(self) -> str:
        return f"<unavailable {self._name}>"


def placeholder(module: str, name: str) -> Unavailable:
    """A module-level ``__getattr__`` body: ``from torchvision.x import y`` gets a placeholder."""
    if name.startswith("__"):
        raise AttributeError(name)
    return Unavailable(f"{module}.{name}")


def __getattr__(name: str) -> Unavailable:
    return placeholder(__name__, name)


from torchvision import transforms  # noqa: E402  (a real submodule, so `import torchvision.transforms` works)

__all__ = ["transforms"]

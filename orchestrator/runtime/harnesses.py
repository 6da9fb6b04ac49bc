"""The harnesses of the source tree: one folder each, ``images/<harness>/``, found by its framework.yml.

This is the only registry of harnesses: nothing else in orchestrator/ names one. A folder is a complete harness
when :func:`incomplete` finds nothing missing (a unit test checks every folder; docs/adding-a-harness.md):

- ``Dockerfile`` installing framework.yml and the parser into ``/opt/evals/<harness>/``, linking the runtime's
  ``core_evals`` as ``/usr/local/bin/core_evals_<h>`` (``<h>``: the name with ``-`` as ``_``), with
  ``EVALS_FRAMEWORK_FILE`` naming that framework.yml, ``ENTRYPOINT ["core_evals_<h>"]`` and the label
  ``evals.harness="<harness>"``;
- ``framework.yml``, valid, whose ``framework.name`` is the folder's name;
- the parser ``parse_<h>.py`` (or package ``parse_<h>/``) defining ``parse`` and ``parse_samples``
  (:mod:`orchestrator.runtime.harness_parser`);
- ``README.md``;
- ``conformance.yml``, valid (:class:`~orchestrator.schema.conformance.ConformanceSpec`), naming one of the
  framework's tasks and files that exist.
"""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator.runtime.harness_parser import load_parsers, module_name
from orchestrator.schema.conformance import load_conformance
from orchestrator.schema.errors import EvalsError
from orchestrator.schema.framework import FrameworkDefinition
from orchestrator.schema.loading import load_model

SOURCE_IMAGES = Path(__file__).resolve().parents[2] / "images"
"""``images/`` of the source tree (absent where the package is installed, e.g. in an image)."""
FRAMEWORK_FILE = "framework.yml"


def harness_dirs(images: Path = SOURCE_IMAGES) -> list[Path]:
    """Every harness folder under ``images``: those holding a framework.yml, by name."""
    return sorted(path.parent for path in images.glob(f"*/{FRAMEWORK_FILE}"))


def entry_point(harness: str) -> str:
    """``core_evals_<harness with - as _>``: the program an image of ``harness`` runs."""
    return "core_evals_" + harness.replace("-", "_")


def incomplete(folder: Path) -> list[str]:
    """What the harness ``folder`` lacks to be a complete harness, one line each; [] when it is complete."""
    harness = folder.name
    problems = [f"{folder / name}: missing" for name in ("Dockerfile", "README.md") if not (folder / name).is_file()]
    problems += _framework_problems(folder)
    try:
        load_parsers(folder)
    except EvalsError as err:
        problems.append(f"parser: {err}")
    problems += _conformance_problems(folder)
    if (folder / "Dockerfile").is_file():
        text = (folder / "Dockerfile").read_text(encoding="utf-8")
        problems += [f"{folder / 'Dockerfile'}: {what}" for what, pattern in dockerfile_rules(harness).items()
                     if not re.search(pattern, text, re.MULTILINE)]
    return problems


def dockerfile_rules(harness: str) -> dict[str, str]:
    """What a harness's Dockerfile must do -> a regular expression its text matches when it does."""
    home, program = f"/opt/evals/{re.escape(harness)}", entry_point(harness)
    parser = module_name(Path(harness))
    return {
        f"installs framework.yml to {home}/": rf"{home}/framework\.yml",
        f"installs {parser} to {home}/": rf"{home}/{parser}\b",
        f"links /usr/local/bin/{program} to the runtime's core_evals":
            rf"ln -s\S* /opt/orchestrator/venv/bin/core_evals /usr/local/bin/{program}\b",
        f"sets EVALS_FRAMEWORK_FILE={home}/framework.yml": rf"EVALS_FRAMEWORK_FILE={home}/framework\.yml\b",
        f'sets ENTRYPOINT ["{program}"]': rf'^ENTRYPOINT \["{program}"\]',
        f'labels evals.harness="{harness}"': rf'evals\.harness="{re.escape(harness)}"',
    }


def _framework_problems(folder: Path) -> list[str]:
    try:
        framework = load_model(FrameworkDefinition, folder / FRAMEWORK_FILE)
    except EvalsError as err:
        return [f"framework.yml: {err}"]
    name = framework.framework.name
    return [] if name == folder.name else [f"framework.yml: framework.name is {name!r}, not the folder's name"]


def _conformance_problems(folder: Path) -> list[str]:
    try:
        spec = load_conformance(folder)
        framework = load_model(FrameworkDefinition, folder / FRAMEWORK_FILE)
    except EvalsError as err:
        return [f"conformance.yml: {err}"]
    problems = [f"conformance.yml: {key} {path} does not exist" for key, path in spec.files(folder).items()
                if not path.exists()]
    if spec.task not in framework.task_names:
        problems.append(f"conformance.yml: task {spec.task!r} is not a task of framework.yml")
    return problems

"""`evals run --from results.yml`: the same evaluation again, in the same image, with the same resolved config.

A results.yml holds the resolved ``config`` and ``target`` (secrets by name only) and, in its provenance, the
image's name and content id. The replay resolves the recorded config once on the host, as the top layer over the
pinned image's own framework (the command templates come from there), checks that it resolves to the recorded one
before anything starts, and hands the container the result like any run (``run_eval --resolved_config``),
starting the image by its id. So an image whose runtime predates ``--resolved_config``, or has another contract
than this host, cannot be replayed from here: its runtime refuses the run with one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orchestrator.host.records.results import read_results
from orchestrator.schema.config import Evaluation
from orchestrator.schema.errors import InputError, ResultsParseError
from orchestrator.schema.results import ResultsFile
from orchestrator.schema.slurm import SlurmConfig

FIXED_FLAGS = ("--eval_type", "--model_id", "--model_url", "--model_type", "--api_key_name", "--run_config",
               "--overrides", "--harness", "--image", "--offline")
"""What a replay takes from the results file; the output location, data location and executor may differ."""


@dataclass(frozen=True)
class Replay:
    """What `--from` reads from a results.yml."""

    source: Path
    results: ResultsFile
    image: str
    image_digest: str
    image_repo_digest: str | None

    @property
    def overrides(self) -> str:
        """The recorded config and target as one --overrides string for the host's resolution (the output dir is the
        new run's)."""
        return ",".join(f"{key}={_flow(value)}" for key, value in _recorded(self.results).items())

    @property
    def eval_type(self) -> str:
        """The recorded task, qualified by its harness (so a task the image does not list runs again too)."""
        return f"{self.results.framework_name}.{self.results.config.type}"

    @property
    def offline(self) -> bool:
        """Whether the recorded run used only cached data (the host mounts the cache accordingly)."""
        return self.results.config.offline


def _flow(value: Any) -> str:
    """One YAML flow value on one line, read back as written by the overrides parser (PyYAML, both ways)."""
    return yaml.safe_dump(value, default_flow_style=True, width=float("inf"), sort_keys=False).strip()


def _recorded(results: ResultsFile) -> dict[str, Any]:
    """The resolved config and target as a run-config layer: everything but the output dir, the task (which
    :attr:`Replay.eval_type` names with its harness, so that a task the image does not list is found too) and nulls
    (which mean "not given" in a layer and would only resolve to the same null)."""
    config = results.config.model_dump(mode="json", exclude={"output_dir", "type"})
    target = results.target.model_dump(mode="json", exclude_none=True)
    extra = config["params"].pop("extra")
    config["params"] = {key: value for key, value in config["params"].items() if value is not None}
    if extra:
        config["params"]["extra"] = extra  # nulls in extra are values
    return {"config": config, "target": target}


def load_replay(path: Path) -> Replay:
    """Read a results.yml (or the output dir holding one); one that names no image id says what is missing."""
    file = path / "results.yml" if path.is_dir() else path
    if not file.is_file():
        raise InputError(f"--from: no results file {file}",
                         hint="give a results.yml or the output directory holding one")
    try:
        results = read_results(file)
    except ResultsParseError as err:
        raise InputError(f"--from: {err.message}", hint=err.hint) from None
    provenance = results.provenance
    missing = [name for name, value in (("image", provenance.image), ("image_digest", provenance.image_digest))
               if not value]
    if missing or provenance.image is None or provenance.image_digest is None:
        raise InputError(f"--from: {file} records no provenance.{' or provenance.'.join(missing)}, so the image it "
                         "ran in is unknown", hint="it was written before evals recorded them, or not by a container "
                                                   "evals started; run it again with --eval_type and --image")
    return Replay(file, results, provenance.image, provenance.image_digest, provenance.image_repo_digest)


def refuse_fixed_flags(given: dict[str, object]) -> None:
    """Flags that would change what a replay runs are bad input (``given``: flag -> its value)."""
    named = [flag for flag in FIXED_FLAGS if given.get(flag)]
    if named:
        raise InputError(f"--from runs the recorded evaluation as it was; {', '.join(named)} cannot change it",
                         hint="drop them (only --output_dir, data and executor options apply), or start a new run")


def check_same(replay: Replay, evaluation: Evaluation, *, slurm: SlurmConfig | None) -> None:
    """The re-planned run must resolve to the recorded config (all but its output dir) and start the image by its
    id: on Slurm only docker does (enroot and apptainer import by name; the config's ``images`` name others)."""
    if slurm is not None and (slurm.container_runtime != "docker" or replay.results.framework_name in slurm.images):
        raise InputError(f"--from starts image {replay.image} by its id ({replay.image_digest}); on Slurm only the "
                         "docker container runtime does that", hint="use --container_runtime docker without an image "
                                                                   "for this harness in the Slurm config, or run "
                                                                   "it here")
    recorded = replay.results
    same = (evaluation.config.model_copy(update={"output_dir": recorded.config.output_dir}) == recorded.config
            and evaluation.target == recorded.target and evaluation.framework_name == recorded.framework_name)
    if not same:
        raise InputError(f"--from: {replay.source} does not resolve to the config it records in image "
                         f"{replay.image} ({replay.image_digest})", hint="start a new run with --run_config instead")

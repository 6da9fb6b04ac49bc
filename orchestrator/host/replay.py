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

from orchestrator.host.records.results import read_named
from orchestrator.schema.config import Evaluation
from orchestrator.schema.errors import InputError
from orchestrator.schema.results import ResultsFile
from orchestrator.schema.slurm import SlurmConfig


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
    file, results = read_named(path, flag="--from: ")
    image, digest = results.provenance.image, results.provenance.image_digest
    if not image or not digest:
        missing = [name for name, value in (("image", image), ("image_digest", digest)) if not value]
        raise InputError(f"--from: {file} records no provenance.{' or provenance.'.join(missing)}, so the image it "
                         "ran in is unknown", hint="it was written before evals recorded them, or not by a container "
                                                   "evals started; run it again with --eval_type and --image")
    return Replay(file, results, image, digest, results.provenance.image_repo_digest)


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

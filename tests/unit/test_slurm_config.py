"""Slurm settings: a strict YAML file, flags that override it, errors at file:line or naming the flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.schema.errors import ConfigError
from orchestrator.schema.slurm import SlurmConfig, resolve_slurm_config

FILE = """\
partition: batch
account: evals
time: "2:00:00"
container_runtime: apptainer
images:
  lm-eval: /shared/lm-eval.sif
sbatch_extra:
  - --qos=high
output_root: /shared/results
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "slurm.yml"
    path.write_text(text)
    return path


def error(tmp_path: Path, text: str | None = None, **flags: object) -> str:
    with pytest.raises(ConfigError) as info:
        resolve_slurm_config(write(tmp_path, text) if text is not None else None, dict(flags))
    assert info.value.exit_code == 2 and "\n" not in str(info.value)
    return str(info.value)


def test_file_then_flags(tmp_path: Path) -> None:
    config = resolve_slurm_config(write(tmp_path, FILE), {"partition": "gpu", "time": None, "gpus": 2,
                                                          "sbatch_extra": ["--exclusive"]})
    assert config.partition == "gpu" and config.account == "evals" and config.time == "2:00:00"
    assert config.gpus == 2 and config.container_runtime == "apptainer"
    assert config.sbatch_extra == ["--qos=high", "--exclusive"]
    assert config.images == {"lm-eval": "/shared/lm-eval.sif"} and config.output_root == "/shared/results"


def test_defaults_without_file_or_flags() -> None:
    config = resolve_slurm_config(None, {})
    assert config == SlurmConfig() and config.container_runtime == "docker"
    assert config.export == ["PATH", "HOME", "USER", "LANG", "TZ", "DOCKER_HOST"]


def test_unknown_key_names_file_line_and_close_match(tmp_path: Path) -> None:
    message = error(tmp_path, "partition: batch\npartiton: gpu\n")
    assert "slurm.yml:2" in message and "partiton" in message and "did you mean 'partition'" in message


@pytest.mark.parametrize(("text", "needle"), [
    ("time: 2h\n", "not a Slurm time limit"),
    ("container_runtime: podman\n", "container_runtime"),
    ("sbatch_extra: ['--array=0-3']\n", "--array is set by evals"),
    ("sbatch_extra: ['--comment=two words']\n", "without spaces or quotes"),
    ("mem: lots\n", "not a Slurm memory size"),
    ("export: ['MY-KEY']\n", "not an environment variable name"),
    ("gpus: 0\n", "gpus"),
])
def test_bad_file_values(tmp_path: Path, text: str, needle: str) -> None:
    message = error(tmp_path, text)
    assert "slurm.yml:1" in message and needle in message


@pytest.mark.parametrize(("flags", "where", "needle"), [
    ({"time": "forever"}, "--time", "not a Slurm time limit"),
    ({"container_runtime": "podman"}, "--container_runtime", "docker"),
    ({"sbatch_extra": ["--export=ALL"]}, "--sbatch", "--export is set by evals"),
    ({"partition": "a b"}, "--partition", "not a valid Slurm name"),
])
def test_bad_flag_values_name_the_flag(tmp_path: Path, flags: dict[str, object], where: str, needle: str) -> None:
    message = error(tmp_path, None, **flags)
    assert message.startswith(f"{where}:") and needle in message


def test_malformed_yaml_points_at_the_line(tmp_path: Path) -> None:
    message = error(tmp_path, "partition: batch\ntime: [1\naccount: x\n")
    assert "slurm.yml:3" in message and "malformed YAML" in message


def test_documented_example_validates(repo: Path, tmp_path: Path) -> None:
    doc = (repo / "docs" / "slurm-and-kubernetes.md").read_text()
    block = "# slurm.yml" + doc.split("```yaml\n# slurm.yml", 1)[1].split("```", 1)[0]
    config = resolve_slurm_config(write(tmp_path, block), {})
    assert config.partition and config.time and config.container_runtime == "enroot" and config.images

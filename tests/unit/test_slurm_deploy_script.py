"""A Slurm run with a deployment: its batch script (golden files) and the multi-node rendering.

Regenerate the golden files after an intended change with ``EVALS_UPDATE_GOLDEN=1 pytest tests/unit``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from orchestrator.host.backends.slurm.script import render_batch_script
from orchestrator.host.backends.slurm.server import gpu_directives, server_image
from orchestrator.host.deploy.multinode import HEAD, RANK, node_command, shell_words
from orchestrator.schema.errors import InputError
from orchestrator.schema.slurm import SlurmConfig
from tests.unit.deploy_cases import CASES, deployment
from tests.unit.records import RUN_DIR, RUN_ID, tasks

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "slurm"


def render(name: str) -> str:
    layer, config = CASES[name]
    return render_batch_script(run_id=RUN_ID, run_dir=RUN_DIR, tasks=tasks(), config=config,
                               deployment=deployment(**layer))


@pytest.mark.parametrize("name", sorted(CASES))
def test_rendered_script_matches_golden_file(name: str) -> None:
    script = render(name)
    golden = GOLDEN / f"deploy-{name}.sh"
    if os.environ.get("EVALS_UPDATE_GOLDEN"):
        golden.write_text(script)
    assert script == golden.read_text(), f"{golden} differs; regenerate with EVALS_UPDATE_GOLDEN=1 if intended"
    assert subprocess.run(["bash", "-n"], input=script, text=True, check=False).returncode == 0


def test_a_deployment_is_one_job_with_its_nodes_and_gpus() -> None:
    script = render("sglang-2node-apptainer")
    assert "--array" not in script and f"#SBATCH --output={RUN_DIR}/logs/job.log\n" in script
    assert "#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --gres=gpu:8\n" in script
    assert "srun --overlap --export=ALL --nodes=2 --ntasks=2 --ntasks-per-node=1" in script
    assert "--dist-init-addr \"${head_node}\":5757 --nnodes 2 --node-rank \"${node_rank}\"" in script
    docker = render("vllm-2node-docker")  # the config's --gres wins over the deployment's gpus
    assert "#SBATCH --gres=gpu:8\n" in docker and docker.count("--gres") == 1


def test_server_secrets_are_exported_by_name_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_never_in_a_script")
    for name in ("vllm-gpus-enroot", "vllm-gpus-apptainer"):
        script = render(name)
        assert "hf_never_in_a_script" not in script
        assert "#SBATCH --export=PATH,HOME,USER,LANG,TZ,DOCKER_HOST,MY_KEY,HF_TOKEN\n" in script
        assert "require MY_KEY HF_TOKEN\n" in script
    assert 'APPTAINERENV_HF_TOKEN="${HF_TOKEN}" apptainer exec' in render("vllm-gpus-apptainer")


def test_single_node_commands_are_the_renderers_own() -> None:
    d = deployment(type="sglang", checkpoint="org/model", port=30001)
    command = node_command(d)
    assert command.entrypoint == ["python3", "-m", "sglang.launch_server"] and "--nnodes" not in command.args


def test_sglang_over_nodes_gets_its_documented_flags() -> None:
    command = node_command(deployment(type="sglang", checkpoint="org/model", nodes=3, tensor_parallel_size=24))
    assert command.args[-6:] == ["--dist-init-addr", f"{HEAD}:5757", "--nnodes", "3", "--node-rank", RANK]
    assert command.args[command.args.index("--tp-size") + 1] == "24"


def test_vllm_over_nodes_is_a_ray_cluster() -> None:
    command = node_command(deployment(type="vllm", checkpoint="org/model", nodes=2, tensor_parallel_size=16))
    assert command.entrypoint is not None and command.entrypoint[:2] == ["bash", "-c"]
    assert "ray start --head" in command.entrypoint[2] and "--distributed-executor-backend ray" in command.entrypoint[2]
    assert command.args[:6] == [RANK, HEAD, "2", "6379", "vllm", "serve"] and command.args[6] == "org/model"


def test_trtllm_over_nodes_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match="trtllm server over 2 nodes is not rendered"):
        node_command(deployment(type="trtllm", checkpoint="org/model", nodes=2))


def test_markers_become_quoted_expansions_and_the_rest_stays_literal() -> None:
    line = shell_words([f"{HEAD}:5757", RANK, "it's $(id)", "", f"x{HEAD}y{RANK}"])
    assert line == '"${head_node}":5757 "${node_rank}" \'it\'"\'"\'s $(id)\' \'\' x"${head_node}"y"${node_rank}"'
    out = subprocess.run(["bash", "-c", f"head_node=h1 node_rank=1; printf '%s\\n' {line}"], capture_output=True,
                         text=True, check=True).stdout
    assert out.splitlines() == ["h1:5757", "1", "it's $(id)", "", "xh1y1"]


def test_server_image_for_each_runtime() -> None:
    assert server_image("vllm/vllm-openai:v0.11.0", SlurmConfig()) == "vllm/vllm-openai:v0.11.0"
    assert server_image("evals/reference-endpoint:latest", SlurmConfig(container_runtime="enroot")) == \
        "dockerd://evals/reference-endpoint:latest"
    assert server_image("docker://vllm/vllm-openai:v0.11.0", SlurmConfig(container_runtime="apptainer")) == \
        "docker://vllm/vllm-openai:v0.11.0"
    assert server_image("x", SlurmConfig(container_runtime="enroot", images={"deployment": "/s/v.sqsh"})) == \
        "/s/v.sqsh"


def test_gpu_directives() -> None:
    assert gpu_directives(deployment(type="reference"), SlurmConfig()) == ["--nodes=1", "--ntasks-per-node=1"]
    assert gpu_directives(deployment(type="vllm", gpus="all"), SlurmConfig())[-1] == "--exclusive"
    assert gpu_directives(deployment(type="vllm", gpus=[0, 2]), SlurmConfig())[-1] == "--gres=gpu:2"
    assert gpu_directives(deployment(type="vllm", gpus=4), SlurmConfig(gpus=4)) == ["--nodes=1", "--ntasks-per-node=1"]

"""Deployments of the Slurm tests: the stand-in renderers of servers whose own renderers live elsewhere, and the
runs rendered as golden scripts (tests/fixtures/slurm/deploy-*.sh) and executed against stand-ins."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.host.deploy import commands
from orchestrator.host.deploy.commands import NodeContext, ServerCommand
from orchestrator.schema.config import DeploymentLayer
from orchestrator.schema.deployment import Deployment, resolve_deployment
from orchestrator.schema.slurm import SlurmConfig


def _mounts(d: Deployment) -> list[tuple[str, str, bool]]:
    return [(d.checkpoint, commands.CHECKPOINT_MOUNT, True)] if d.checkpoint and d.checkpoint_is_path else []


def _model(d: Deployment) -> str:
    return commands.CHECKPOINT_MOUNT if d.checkpoint_is_path else (d.checkpoint or d.served_model_name)


def vllm(d: Deployment, node: NodeContext) -> ServerCommand:
    """`vllm serve MODEL ...` as the vllm/vllm-openai image runs it (its entry point is `vllm serve`)."""
    args = [_model(d), "--served-model-name", d.served_model_name, "--host", "127.0.0.1", "--port", str(d.port),
            "--tensor-parallel-size", str(d.tensor_parallel_size), *d.extra_args]
    return ServerCommand(image=d.image, entrypoint=None, args=args, secret_envs=list(d.env), mounts=_mounts(d),
                         port=d.port, health_path=d.health.path, model_name=d.served_model_name)


def sglang(d: Deployment, node: NodeContext) -> ServerCommand:
    """`python3 -m sglang.launch_server --model-path MODEL ...` (single node; multinode.py adds the node flags)."""
    args = ["--model-path", _model(d), "--served-model-name", d.served_model_name, "--host", "127.0.0.1",
            "--port", str(d.port), "--tp", str(d.tensor_parallel_size), *d.extra_args]
    return ServerCommand(image=d.image, entrypoint=["python3", "-m", "sglang.launch_server"], args=args,
                         secret_envs=list(d.env), mounts=_mounts(d), port=d.port, health_path=d.health.path,
                         model_name=d.served_model_name)


@pytest.fixture
def standin_renderers() -> Iterator[None]:
    """vLLM and SGLang renderers for these tests (the real ones are written in commands.py separately)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(commands.RENDERERS, "vllm", vllm)
        patch.setitem(commands.RENDERERS, "sglang", sglang)
        yield


def deployment(**layer: Any) -> Deployment:
    resolved = resolve_deployment(DeploymentLayer.model_validate(layer))
    assert resolved is not None
    return resolved


CASES: dict[str, tuple[dict[str, Any], SlurmConfig]] = {
    "reference-docker": ({"type": "reference", "port": 8123},
                         SlurmConfig(partition="batch", time="1:00:00")),
    "vllm-gpus-enroot": ({"type": "vllm", "checkpoint": "/shared/ckpt/llama-8b", "gpus": 2, "tensor_parallel_size": 2,
                          "env": ["HF_TOKEN"], "extra_args": ["--max-model-len", "8192"]},
                         SlurmConfig(container_runtime="enroot", partition="gpu", time="2:00:00")),
    "vllm-gpus-apptainer": ({"type": "vllm", "checkpoint": "meta-llama/Llama-3.1-8B-Instruct", "gpus": 1,
                             "env": ["HF_TOKEN"]},
                            SlurmConfig(container_runtime="apptainer", images={"deployment": "/shared/vllm.sif"})),
    "sglang-2node-apptainer": ({"type": "sglang", "checkpoint": "/shared/ckpt/llama-405b", "nodes": 2, "gpus": 8,
                                "tensor_parallel_size": 16},
                               SlurmConfig(container_runtime="apptainer", partition="gpu")),
    "sglang-2node-enroot": ({"type": "sglang", "checkpoint": "/shared/ckpt/llama-405b", "nodes": 2, "gpus": 8,
                             "tensor_parallel_size": 16},
                            SlurmConfig(container_runtime="enroot", partition="gpu")),
    "vllm-2node-docker": ({"type": "vllm", "checkpoint": "/shared/ckpt/llama-405b", "nodes": 2, "gpus": 8,
                           "tensor_parallel_size": 8, "extra_args": ["--pipeline-parallel-size", "2"]},
                          SlurmConfig(gres="gpu:8", time="4:00:00")),
}
"""Golden name -> (the deployment layer, the Slurm settings)."""

"""Deployments of the Slurm tests: the runs rendered as golden scripts (tests/fixtures/slurm/deploy-*.sh) with each
server's real renderer, and executed against stand-ins."""

from __future__ import annotations

from typing import Any

from orchestrator.schema.config import DeploymentLayer
from orchestrator.schema.deployment import Deployment, resolve_deployment
from orchestrator.schema.slurm import SlurmConfig


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

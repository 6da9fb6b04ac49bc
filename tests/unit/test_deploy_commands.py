"""Each server type's command line, rendered from a deployment and compared with its golden file
(tests/fixtures/deployment/<case>.txt). Regenerate them after an intended change with
``EVALS_UPDATE_GOLDEN=1 pytest tests/unit/test_deploy_commands.py`` and read the diff."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from orchestrator.host.deploy.commands import render_server
from orchestrator.schema.config import DeploymentLayer
from orchestrator.schema.deployment import resolve_deployment
from orchestrator.schema.errors import InputError

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "deployment"

CASES: dict[str, dict[str, Any]] = {
    "reference": {"type": "reference"},
    "reference-path": {"type": "reference", "checkpoint": "/models/smol.gguf", "port": 9001},
    "vllm-model-id": {"type": "vllm", "checkpoint": "meta-llama/Llama-3.1-8B-Instruct", "gpus": 1,
                      "env": ["HF_TOKEN"]},
    "vllm-path-tp-dp": {"type": "vllm", "checkpoint": "/models/llama-70b", "served_model_name": "llama-70b",
                        "gpus": "all", "tensor_parallel_size": 4, "data_parallel_size": 2,
                        "extra_args": ["--max-model-len", "8192", "--enable-prefix-caching"]},
    "sglang-model-id": {"type": "sglang", "checkpoint": "Qwen/Qwen2.5-7B-Instruct", "gpus": [0, 1],
                        "tensor_parallel_size": 2},
    "sglang-path-dp": {"type": "sglang", "checkpoint": "/models/qwen", "port": 31000, "data_parallel_size": 2,
                       "extra_args": ["--mem-fraction-static", "0.8"], "env": ["HF_TOKEN"]},
    "nim": {"type": "nim", "served_model_name": "meta/llama-3.1-8b-instruct", "gpus": 1},
    "nim-path-tp": {"type": "nim", "image": "nvcr.io/nim/nvidia/llm-nim:1.13.1", "checkpoint": "/models/llama",
                    "tensor_parallel_size": 2, "gpus": 2, "env": ["HF_TOKEN"]},
    "trtllm-path": {"type": "trtllm", "checkpoint": "/models/llama", "gpus": 1},
    "trtllm-model-id-tp": {"type": "trtllm", "checkpoint": "meta-llama/Llama-3.1-8B-Instruct",
                           "tensor_parallel_size": 2, "gpus": 2, "extra_args": ["--backend", "pytorch"]},
}


def rendered(case: dict[str, Any]) -> str:
    command = render_server(resolve_deployment(DeploymentLayer.model_validate(case)))  # type: ignore[arg-type]
    return json.dumps({"image": command.image, "entrypoint": command.entrypoint, "args": command.args,
                       "environment": command.environment, "secret_envs": command.secret_envs,
                       "mounts": command.mounts, "port": command.port, "health_path": command.health_path,
                       "model_name": command.model_name}, indent=2) + "\n"


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_server_renders_its_documented_command_line(name: str) -> None:
    text, golden = rendered(CASES[name]), GOLDEN / f"{name}.txt"
    if os.environ.get("EVALS_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text(), f"{golden} differs; regenerate with EVALS_UPDATE_GOLDEN=1 if intended"


def test_the_golden_files_are_exactly_the_cases() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.txt")) == sorted(CASES)


def test_the_flags_each_server_documents() -> None:
    vllm = json.loads(rendered(CASES["vllm-path-tp-dp"]))
    assert vllm["entrypoint"] == ["vllm", "serve"] and vllm["args"][0] == "/checkpoint"
    assert vllm["args"][vllm["args"].index("--tensor-parallel-size") + 1] == "4"
    assert vllm["args"][vllm["args"].index("--data-parallel-size") + 1] == "2"
    assert vllm["args"][-3:] == ["--max-model-len", "8192", "--enable-prefix-caching"]
    assert vllm["mounts"] == [["/models/llama-70b", "/checkpoint", True]]
    sglang = json.loads(rendered(CASES["sglang-model-id"]))
    assert sglang["entrypoint"] == ["python3", "-m", "sglang.launch_server"]
    assert sglang["args"][:2] == ["--model-path", "Qwen/Qwen2.5-7B-Instruct"] and "--tp-size" in sglang["args"]
    assert sglang["mounts"] == [] and sglang["port"] == 30000
    nim = json.loads(rendered(CASES["nim-path-tp"]))
    assert nim["environment"]["NIM_MODEL_NAME"] == "/checkpoint"
    assert nim["environment"]["NIM_TENSOR_PARALLEL_SIZE"] == "2"
    assert nim["secret_envs"] == ["NGC_API_KEY", "HF_TOKEN"] and nim["health_path"] == "/v1/health/ready"
    trtllm = json.loads(rendered(CASES["trtllm-path"]))
    assert trtllm["entrypoint"] == ["trtllm-serve"] and "--tp_size" in trtllm["args"]


@pytest.mark.parametrize(("case", "message"), [
    ({"type": "vllm"}, "a vllm deployment needs a checkpoint"),
    ({"type": "trtllm", "checkpoint": "/m", "data_parallel_size": 2}, "trtllm-serve has no data parallelism"),
    ({"type": "nim", "data_parallel_size": 2}, "a NIM serves one replica"),
])
def test_what_a_server_cannot_do_is_bad_input(case: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        rendered(case)

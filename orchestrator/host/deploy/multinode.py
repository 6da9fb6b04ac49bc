"""A server spread over the nodes of a Slurm allocation: the command each node runs, with its rank and the head's name.

:func:`node_command` renders the server once through :func:`orchestrator.host.deploy.commands.render_server` and, for a
deployment over several nodes, extends that command with what the server documents for it:

- SGLang: every node runs ``sglang.launch_server`` with ``--dist-init-addr HEAD:PORT --nnodes N --node-rank RANK``;
  ``--tp`` is the total over all nodes. Only the head answers HTTP.
- vLLM (v0.11, whose multi-node serving is a Ray cluster): the head starts ``ray start --head``, waits until the N
  nodes joined, then runs ``vllm serve ... --distributed-executor-backend ray``; the other nodes run
  ``ray start --block --address=HEAD:PORT``. ``--tensor-parallel-size`` (and ``--pipeline-parallel-size`` in
  extra_args) count GPUs over all nodes.
- TensorRT-LLM serves across nodes as one MPI rank per GPU (``srun --mpi=pmix trtllm-llmapi-launch trtllm-serve``),
  not one process per node: not rendered here; a one-line error says so.

The head's name and the node's rank are only known on the nodes, so they are rendered as :data:`HEAD` and
:data:`RANK`, markers the batch script turns into ``"${head_node}"`` and ``"${node_rank}"`` (:func:`shell_words`).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import replace

from orchestrator.host.deploy.commands import NodeContext, ServerCommand, render_server
from orchestrator.schema.deployment import Deployment
from orchestrator.schema.errors import InputError

HEAD = "\x00head\x00"
"""Stands for the first node's host name in a rendered argument (a NUL byte is never in a user's value)."""
RANK = "\x00rank\x00"
"""Stands for this node's rank (0 on the head)."""
SHELL: dict[str, str] = {HEAD: '"${head_node}"', RANK: '"${node_rank}"'}
"""Marker -> the shell expansion the batch script defines on every node."""

SGLANG_DIST_PORT = 5757
"""The port of SGLang's torch.distributed rendezvous on the head (--dist-init-addr HEAD:PORT)."""
RAY_PORT = 6379
"""The Ray head's port (vLLM)."""

IMAGE_ENTRYPOINTS: dict[str, list[str]] = {
    "vllm": ["vllm", "serve"],  # vllm/vllm-openai: ENTRYPOINT ["vllm", "serve"]
}
"""The entry point of a type's image, for wrappers that must name it (a ServerCommand says None: the image's own)."""

RAY_HEAD_OR_WORKER = (
    'rank=$1 head=$2 nodes=$3 port=$4; shift 4\n'
    'if [ "${rank}" != 0 ]; then exec ray start --block --address="${head}:${port}" --disable-usage-stats; fi\n'
    'ray start --head --port="${port}" --disable-usage-stats || exit 1\n'
    'until [ "$(python3 -c \'import ray; ray.init(address="auto", logging_level="ERROR"); '
    'print(sum(n["Alive"] for n in ray.nodes()))\' 2>/dev/null || echo 0)" -ge "${nodes}" ]; do\n'
    '  echo "evals: waiting for ${nodes} Ray nodes"; sleep 5\n'
    'done\n'
    'exec "$@" --distributed-executor-backend ray'
)
"""vLLM's documented multi-node recipe (examples/online_serving/multi-node-serving.sh) as one bash program."""


def _sglang(d: Deployment, base: ServerCommand) -> ServerCommand:
    if "--nnodes" in base.args:  # the type's renderer handled the node context itself
        return base
    return replace(base, args=[*base.args, "--dist-init-addr", f"{HEAD}:{SGLANG_DIST_PORT}",
                               "--nnodes", str(d.nodes), "--node-rank", RANK])


def _vllm(d: Deployment, base: ServerCommand) -> ServerCommand:
    serve = [*(base.entrypoint or IMAGE_ENTRYPOINTS["vllm"]), *base.args]
    return replace(base, entrypoint=["bash", "-c", RAY_HEAD_OR_WORKER, "vllm-ray"],
                   args=[RANK, HEAD, str(d.nodes), str(RAY_PORT), *serve])


MULTI_NODE: dict[str, Callable[[Deployment, ServerCommand], ServerCommand]] = {"sglang": _sglang, "vllm": _vllm}
"""Type -> how its single-node command becomes one node's part of a multi-node server."""


def node_command(deployment: Deployment) -> ServerCommand:
    """What every node of the allocation runs (the only node's command when the deployment has one)."""
    if deployment.nodes == 1:
        return render_server(deployment, NodeContext())
    extend = MULTI_NODE.get(deployment.type)
    if extend is None:
        raise InputError(f"a {deployment.type} server over {deployment.nodes} nodes is not rendered by evals "
                         f"(multi-node: {', '.join(sorted(MULTI_NODE))})",
                         hint="set deployment.nodes: 1, or serve it yourself and give its URL")
    base = render_server(deployment, NodeContext(head=HEAD, node_rank=RANK, nodes=deployment.nodes))
    return extend(deployment, base)


def shell_words(words: list[str]) -> str:
    """The words as one shell-quoted command line, each marker turned into its expansion (quoted, one word)."""
    out = []
    for word in words:
        parts = [word]
        for marker in SHELL:
            parts = [piece for part in parts for piece in _split_keep(part, marker)]
        out.append("".join(SHELL.get(p, shlex.quote(p)) for p in parts if p) or "''")
    return " ".join(out)


def _split_keep(text: str, marker: str) -> list[str]:
    pieces = text.split(marker)
    result = [pieces[0]]
    for piece in pieces[1:]:
        result += [marker, piece]
    return result

"""Partial candidate ``granian-ourpool``: the Granian server (granian_stack.py) with OUR client pool.

    python bench/proxy/stacks/granian_ourpool_stack.py --upstream URL --port P --output-dir DIR

Not a maintained stack as a whole (the client stays hand-written): it tells what the server half alone
would give, since the aiohttp client is the larger cost of the full candidates.
"""

from __future__ import annotations

from granian_stack import GranianServer
from launch import run

from orchestrator.runtime.proxy.upstream_pool import UpstreamPool

if __name__ == "__main__":
    raise SystemExit(run(script=__file__, server_class=GranianServer, pool_class=UpstreamPool))

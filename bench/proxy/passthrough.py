"""The floor: the least an aiohttp proxy can do (read, forward, answer), with our proxy's command line.

    python bench/proxy/passthrough.py --upstream URL --port P --output-dir DIR

No interceptors, no cache, no logs: what aiohttp itself costs per request on this machine, so the
benchmark can tell the chain's cost from the framework's. Run with the project's venv (it has aiohttp).
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web


async def serve(upstream: str, port: int) -> None:
    """Forward every POST body to ``upstream`` and answer with its status and body, until SIGTERM."""
    session = ClientSession(connector=TCPConnector(limit=0), timeout=ClientTimeout(total=300))

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        async with session.post(upstream, data=body, headers={"Content-Type": "application/json"}) as answer:
            return web.Response(status=answer.status, body=await answer.read(), content_type="application/json")

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", forward)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    print(f"proxy listening on http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()
    await session.close()


def main() -> None:
    """Parse the contract's flags (``--output-dir`` and ``--config`` are accepted and unused)."""
    parser = argparse.ArgumentParser(prog="passthrough.py", description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--output-dir")
    parser.add_argument("--config")
    args = parser.parse_args()
    asyncio.run(serve(args.upstream, args.port))


if __name__ == "__main__":
    main()

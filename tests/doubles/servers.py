"""Test double: a model server backend whose "container" is a small HTTP server on 127.0.0.1 (unit tests only).

``healthy``: it answers the health route 200 (else 404); ``exits_with``: the container ends at once with that code
and prints ``log``. It records the specs it started and the ids it removed; ``gpu_runtime`` and ``images`` say what
the engine has (an image not in ``images`` cannot be pulled)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from orchestrator.host.backends.container import ServerSpec
from orchestrator.schema.errors import InputError


@dataclass
class FakeServers:
    """Starts a stand-in server per spec on the spec's ``--port`` (or NIM_SERVER_PORT)."""

    healthy: bool = True
    exits_with: int | None = None
    log: bytes = b"server: loading the model\nserver: ready\n"
    gpu_runtime: bool = False
    images: dict[str, str] = field(default_factory=lambda: {"evals/reference-endpoint:latest": "sha256:ref"})
    started: list[ServerSpec] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    _http: dict[str, ThreadingHTTPServer] = field(default_factory=dict)

    def has_gpu_runtime(self) -> bool:
        """What the test says."""
        return self.gpu_runtime

    def image_id(self, image: str, *, pull: bool) -> str:
        """The id of a known image; any other is bad input, as the docker one says."""
        if image not in self.images:
            raise InputError(f"the server image {image} is not on this engine and could not be pulled",
                             hint=f"docker pull {image}")
        return self.images[image]

    def start(self, spec: ServerSpec) -> str:
        """Serve the health route on the spec's port (unless it exits at once)."""
        self.started.append(spec)
        container_id = f"c{len(self.started)}"
        if self.exits_with is None:
            port = int(spec.environment.get("NIM_SERVER_PORT") or spec.args[spec.args.index("--port") + 1])
            healthy = self.healthy

            class Health(BaseHTTPRequestHandler):
                def do_GET(self) -> None:  # the http.server hook
                    self.send_response(200 if healthy else 404)
                    self.end_headers()

                def log_message(self, format: str, *args: object) -> None:
                    pass

            server = ThreadingHTTPServer(("127.0.0.1", port), Health)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._http[container_id] = server
        return container_id

    def running(self, container_id: str) -> tuple[bool, int | None]:
        """Running until removed, unless it exits at once."""
        if container_id in self.removed or self.exits_with is not None:
            return False, self.exits_with
        return True, None

    def logs(self, container_id: str) -> bytes:
        """The scripted log."""
        return self.log

    def remove(self, container_id: str) -> None:
        """Stop the stand-in and record the id."""
        self.removed.append(container_id)
        server = self._http.pop(container_id, None)
        if server is not None:
            server.shutdown()
            server.server_close()

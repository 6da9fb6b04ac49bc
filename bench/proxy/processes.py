"""The benchmark's processes: started in their own sessions with output to a log file, stopped by PID."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

HOST = "127.0.0.1"
ANSWER = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "The answer is 4."},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 60, "completion_tokens": 16, "total_tokens": 76},
    },
    separators=(",", ":"),
)


class Process:
    """A child process in its own session, output to a log file, stopped by PID."""

    def __init__(self, name: str, argv: list[str], log: Path, *, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log = log
        self._file: IO[bytes] = log.open("wb")
        self.popen = subprocess.Popen(
            argv, stdout=self._file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
        )

    @property
    def pid(self) -> int:
        """The child's PID."""
        return self.popen.pid

    def check_alive(self) -> None:
        """Fail with the log's tail if the process has exited."""
        if self.popen.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} exited with code {self.popen.returncode}; log {self.log}:\n{tail}")

    def stop(self) -> None:
        """SIGTERM, wait up to 10 s, then SIGKILL; only this PID."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        self._file.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for_port(process: Process, port: int, *, timeout: float = 60.0) -> None:
    """Wait until ``port`` accepts connections (or the process dies)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        process.check_alive()
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{process.name} did not listen on port {port} within {timeout:.0f} s (log {process.log})")


def wait_for_line(process: Process, text: str, *, timeout: float = 60.0) -> None:
    """Wait until the process's output contains ``text``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        process.check_alive()
        if text in process.log.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{process.name} did not print {text!r} within {timeout:.0f} s (log {process.log})")


def nginx_head(work: Path) -> str:
    """The start of a single-process nginx config with the echo module, up to inside ``http {``."""
    return f"""
load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;
daemon off;
master_process off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 16384; }}
http {{
  access_log off;
  client_body_temp_path {work}/nginx-body;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
"""


def nginx_config(work: Path, instant_port: int, slow_port: int) -> Path:
    """One single-process nginx serving both endpoints; the slow one answers after 50 ms (echo module)."""
    body = ANSWER.replace("\\", "\\\\").replace("'", "\\'")
    config = nginx_head(work) + f"""  default_type application/json;
  server {{
    listen {HOST}:{instant_port} backlog=4096;
    location / {{ return 200 '{body}'; }}
  }}
  server {{
    listen {HOST}:{slow_port} backlog=4096;
    location / {{ echo_sleep 0.05; echo_exec /answer; }}
    location = /answer {{ internal; return 200 '{body}'; }}
  }}
}}
"""
    path = work / "nginx.conf"
    path.write_text(config)
    return path


def version_of(argv: list[str]) -> str:
    """First line a command prints about its version (stdout or stderr)."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    except OSError as error:
        return f"unavailable ({error})"
    text = (result.stdout + result.stderr).strip()
    return text.splitlines()[0] if text else "?"

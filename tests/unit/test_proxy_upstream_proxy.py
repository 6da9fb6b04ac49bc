"""The adapter proxy behind a forward proxy: HTTPS_PROXY/HTTP_PROXY/ALL_PROXY/NO_PROXY as curl and requests read
them, and real exchanges through a loopback forward proxy (tests/forward_proxy.py): absolute form for http
endpoints, CONNECT tunnels with verified TLS for https ones, credentials, refusals, keep-alive reuse.

The endpoints are named ``endpoint.test`` (a name nothing resolves): only the forward proxy, which takes every
name to be 127.0.0.1, can reach them, so an answer proves the request went through it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
import uvloop

from orchestrator.runtime.proxy import __main__ as proxy_main
from orchestrator.runtime.proxy.http import HttpResponse, ProxyRefusedError, UpstreamError
from orchestrator.runtime.proxy.server import Proxy
from orchestrator.runtime.proxy.upstream_pool import UpstreamPool
from orchestrator.runtime.proxy.upstream_proxy import bypassed, parse_proxy_url, proxy_for
from orchestrator.schema.adapter import AdapterConfig
from orchestrator.schema.errors import InputError
from tests import forward_proxy
from tests.forward_proxy import Seen
from tests.unit.test_cli import cli

ANSWER = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
          "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop,
                                                             "uvloop": uvloop.new_event_loop}


@pytest.fixture(autouse=True)
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets the variables it means; none of the machine's."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name == "REQUEST_METHOD":
            monkeypatch.delenv(name)


# --- which proxy, from the environment ---------------------------------------------------------------------------

@pytest.mark.parametrize(("host", "port", "no_proxy", "expected"), [
    ("api.example.com", 443, "example.com", True),
    ("api.example.com", 443, ".example.com", True),
    ("example.com", 443, ".example.com", True),
    ("api.example.com", 443, "*.example.com", True),
    ("API.Example.COM.", 443, "example.com", True),
    ("badexample.com", 443, "example.com", False),
    ("example.com.evil.org", 443, "example.com", False),
    ("api.example.com", 443, "other.org example.com", True),  # spaces separate too
    ("api.example.com", 443, " other.org ,, example.com ", True),
    ("anything.at.all", 80, "*", True),
    ("anything.at.all", 80, "other.org, *", True),
    ("api.example.com", 8443, "example.com:8443", True),
    ("api.example.com", 443, "example.com:8443", False),
    ("api.example.com", 443, "example.com:https", False),  # not a port: matches nothing
    ("10.1.2.3", 443, "10.0.0.0/8", True),
    ("11.1.2.3", 443, "10.0.0.0/8", False),
    ("10.1.2.3", 443, "10.1.2.3", True),
    ("10.1.2.3", 8000, "10.1.2.3:8000", True),
    ("10.1.2.3", 443, "10.1.2.3:8000", False),
    ("fd00::5", 443, "fd00::/8", True),
    ("fd00::5", 443, "fd00::5", True),
    ("fd00::5", 443, "[fd00::5]:443", True),
    ("fd00::5", 443, "[fd00::5]:8443", False),
    ("10.1.2.3", 443, "fd00::/8", False),
    ("api.example.com", 443, "10.0.0.0/8", False),  # names are not resolved: the proxy resolves them
    ("example.com", 443, "", False),
])
def test_no_proxy_rules(host: str, port: int, no_proxy: str, expected: bool) -> None:
    assert bypassed(host, port, no_proxy) is expected


@pytest.mark.parametrize(("env", "scheme", "host", "expected"), [
    ({"HTTPS_PROXY": "http://upper:3128"}, "https", "api.example.com", "http://upper:3128"),
    ({"HTTPS_PROXY": "http://upper:3128", "https_proxy": "http://lower:3128"}, "https", "api.example.com",
     "http://lower:3128"),  # lower case wins
    ({"HTTPS_PROXY": "http://upper:3128", "https_proxy": ""}, "https", "api.example.com", None),  # and turns off
    ({"HTTP_PROXY": "http://plain:3128"}, "https", "api.example.com", None),  # http_proxy: http endpoints only
    ({"HTTP_PROXY": "http://plain:3128"}, "http", "api.example.com", "http://plain:3128"),
    ({"ALL_PROXY": "http://every:3128"}, "https", "api.example.com", "http://every:3128"),
    ({"ALL_PROXY": "http://every:3128", "HTTPS_PROXY": "http://tls:3128"}, "https", "api.example.com",
     "http://tls:3128"),
    ({"HTTPS_PROXY": "proxy.corp:3128"}, "https", "api.example.com", "http://proxy.corp:3128"),  # no scheme: http
    ({"HTTPS_PROXY": "http://proxy.corp"}, "https", "api.example.com", "http://proxy.corp:80"),
    ({"HTTPS_PROXY": "https://proxy.corp"}, "https", "api.example.com", "https://proxy.corp:443"),
    ({"HTTPS_PROXY": "http://[fd00::1]:3128"}, "https", "api.example.com", "http://[fd00::1]:3128"),
    ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": ".example.com"}, "https", "api.example.com", None),
    ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": ".example.com", "no_proxy": "other.org"}, "https",
     "api.example.com", "http://p:3128"),  # lower case wins here too
    ({"HTTPS_PROXY": "http://p:3128"}, "https", "localhost", None),  # loopback: always direct
    ({"HTTPS_PROXY": "http://p:3128"}, "https", "127.0.0.2", None),
    ({"HTTPS_PROXY": "http://p:3128"}, "https", "::1", None),
    ({"HTTPS_PROXY": "socks5://unused:1080", "NO_PROXY": "*"}, "https", "api.example.com", None),  # not read
])
def test_which_proxy(env: dict[str, str], scheme: str, host: str, expected: str | None,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    proxy = proxy_for(scheme, host, 443)
    assert (proxy.url if proxy else None) == expected


def test_credentials_are_percent_decoded_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", "http://d%40main%5Cuser:p%3Ass%20w@proxy.corp:3128")
    proxy = proxy_for("https", "api.example.com", 443)
    assert proxy is not None and proxy.variable == "https_proxy"
    assert proxy.authorization == "Basic " + base64.b64encode(b"d@main\\user:p:ss w").decode()
    assert proxy.url == "http://d%40main%5Cuser:***@proxy.corp:3128"
    assert "p%3Ass" not in repr(proxy) and (proxy.authorization or "") not in repr(proxy)


@pytest.mark.parametrize(("value", "message"), [
    ("socks5://user:hunter2@proxy.corp:1080", "HTTPS_PROXY names a socks5:// proxy (socks5://***@proxy.corp:1080)"),
    ("http://user:hunter2@proxy.corp:31280000", "HTTPS_PROXY is not a proxy URL (Port out of range"),
    ("http://user:hunter2@proxy.corp:port", "HTTPS_PROXY is not a proxy URL (Port could not be cast"),
    ("http://user:hunter2@", "HTTPS_PROXY is not a proxy URL (no host): http://***@"),
])
def test_a_proxy_variable_that_is_not_a_proxy_url_is_one_line(value: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_proxy_url(value, variable="HTTPS_PROXY")
    text = str(caught.value)
    assert text.startswith(message) and "hunter2" not in text and "\n" not in text


def test_the_pool_fails_at_creation_on_a_bad_proxy_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "socks5://proxy.corp:1080")
    with pytest.raises(InputError, match="socks5://"):
        UpstreamPool("https://api.example.com/v1", max_connections=1)
    assert UpstreamPool("http://api.example.com/v1", max_connections=1).proxy is None  # not an https endpoint


def test_the_standalone_proxy_stops_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://user:hunter2@proxy.corp:port")
    code = proxy_main.main(["--upstream", "https://api.example.com/v1/chat/completions", "--output-dir",
                            str(tmp_path), "--processes", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("proxy: error: HTTPS_PROXY is not a proxy URL") and "hunter2" not in err


def test_run_eval_stops_before_writing_anything(tmp_path: Path) -> None:
    result = cli("run_eval", "--eval_type", "gsm8k", "--model_id", "m", "--model_type", "chat",
                 "--model_url", "https://api.example.com/v1/chat/completions", "--output_dir", str(tmp_path / "out"),
                 env={"https_proxy": "socks5://user:hunter2@proxy.corp:1080"})
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "https_proxy names a socks5:// proxy" in result.stderr and "hunter2" not in result.stderr
    assert not (tmp_path / "out").exists()


# --- real exchanges through a loopback forward proxy ---------------------------------------------------------------

@dataclass
class Origin:
    """A threaded HTTP/1.1 endpoint on 127.0.0.1 (TLS with ``tls``) that records what reached it."""

    port: int = 0
    requests: list[tuple[str, str, dict[str, str], int]] = field(default_factory=list)  # method, path, headers,
    # the client's port (one per connection)


@contextmanager
def origin(tls: ssl.SSLContext | None = None) -> Iterator[Origin]:
    state = Origin()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                   self.client_address[1]))
            body = json.dumps(ANSWER if self.command == "POST" else {"data": [{"id": "m"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET = _answer  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:
            return

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def finish_request(self, request: Any, client_address: Any) -> None:
            if tls is not None:
                try:
                    request = tls.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError):
                    return  # a client that does not trust us: its test says so
            super().finish_request(request, client_address)

    server = Server(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def trusted(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test CA trusted the way a user trusts a corporate CA: SSL_CERT_FILE (the pool's default context)."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    monkeypatch.setenv("SSL_CERT_FILE", str(path))


def server_tls(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


def ask(url: str, *, count: int = 2, loop: str = "asyncio",
        paths: tuple[str, ...] = ("/v1/chat/completions",)) -> list[HttpResponse | BaseException]:
    """``count`` POSTs (one after the other, on one pool) to each path of ``url``'s origin."""
    async def main() -> list[HttpResponse | BaseException]:
        pool = UpstreamPool(url, max_connections=2)
        answers: list[HttpResponse | BaseException] = []
        try:
            for path in paths:
                for _ in range(count):
                    try:
                        answers.append(await pool.request("POST", path, {"content-type": "application/json"},
                                                          b'{"model": "m"}', timeout=10))
                    except (UpstreamError, OSError, TimeoutError) as err:
                        answers.append(err)
        finally:
            pool.close()
        return answers

    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        return runner.run(main())


def statuses(answers: list[HttpResponse | BaseException]) -> list[int | BaseException]:
    return [answer.status if isinstance(answer, HttpResponse) else answer for answer in answers]


def test_http_endpoint_through_the_proxy_in_absolute_form_with_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    with origin() as endpoint, forward_proxy.running(credentials=("user", "p@ss")) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url.replace("://", "://user:p%40ss@"))
        answers = ask(f"http://endpoint.test:{endpoint.port}/v1", count=3)
    assert statuses(answers) == [200, 200, 200]
    target = f"http://endpoint.test:{endpoint.port}/v1/chat/completions"
    assert proxy.seen == [Seen(1, "POST", target, "match", 200)] * 3  # one kept-alive connection to the proxy
    assert proxy.connections == 1
    assert all(headers["host"] == f"endpoint.test:{endpoint.port}" and "proxy-authorization" not in headers
               for _, _, headers, _ in endpoint.requests)


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.usefixtures("trusted")
def test_https_endpoint_through_a_connect_tunnel_kept_alive(loop: str, ca: trustme.CA,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    with origin(server_tls(ca, "endpoint.test")) as endpoint, \
            forward_proxy.running(credentials=("user", "secret")) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url.replace("://", "://user:secret@"))
        answers = ask(f"https://endpoint.test:{endpoint.port}/v1", count=3, loop=loop)
    assert statuses(answers) == [200, 200, 200]
    assert proxy.seen == [Seen(1, "CONNECT", f"endpoint.test:{endpoint.port}", "match", 200)]  # one tunnel
    assert len({client_port for *_, client_port in endpoint.requests}) == 1  # ... that the 3 requests share
    assert all("proxy-authorization" not in headers for _, _, headers, _ in endpoint.requests)  # proxy only


@pytest.mark.usefixtures("trusted")
def test_the_endpoint_certificate_is_verified_inside_the_tunnel(ca: trustme.CA,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with origin(server_tls(ca, "other.test")) as endpoint, forward_proxy.running() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        wrong_name = ask(f"https://endpoint.test:{endpoint.port}/v1", count=1)
        monkeypatch.delenv("SSL_CERT_FILE")
        unknown_ca = ask(f"https://other.test:{endpoint.port}/v1", count=1)
    assert isinstance(wrong_name[0], ssl.SSLCertVerificationError) and "endpoint.test" in str(wrong_name[0])
    assert isinstance(unknown_ca[0], ssl.SSLCertVerificationError)
    assert [seen.method for seen in proxy.seen] == ["CONNECT", "CONNECT"]


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("endpoint_tls", [True, False], ids=["https-endpoint", "http-endpoint"])
@pytest.mark.usefixtures("trusted")
def test_an_https_proxy_is_spoken_to_over_tls(loop: str, endpoint_tls: bool, ca: trustme.CA,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    tls = server_tls(ca, "endpoint.test") if endpoint_tls else None
    with origin(tls) as endpoint, forward_proxy.running(tls=server_tls(ca, "127.0.0.1")) as proxy:
        assert proxy.url.startswith("https://")
        monkeypatch.setenv("HTTPS_PROXY" if endpoint_tls else "HTTP_PROXY", proxy.url)
        scheme = "https" if endpoint_tls else "http"
        answers = ask(f"{scheme}://endpoint.test:{endpoint.port}/v1", count=2, loop=loop)
    assert statuses(answers) == [200, 200]
    assert [seen.method for seen in proxy.seen] == (["CONNECT"] if endpoint_tls else ["POST", "POST"])
    assert proxy.connections == 1


def test_no_proxy_and_loopback_go_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    with origin() as endpoint, forward_proxy.running() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        answers = ask(f"http://127.0.0.1:{endpoint.port}/v1", count=1)  # loopback: a proxy cannot reach it
        monkeypatch.setenv("NO_PROXY", "other.org, .test")
        assert UpstreamPool("https://endpoint.test:1/v1", max_connections=1).proxy is None
        monkeypatch.setenv("NO_PROXY", "other.org, endpoint.test:2")
        assert UpstreamPool("https://endpoint.test:1/v1", max_connections=1).proxy is not None
    assert statuses(answers) == [200] and len(endpoint.requests) == 1 and proxy.seen == []


@pytest.mark.parametrize("scheme", ["https", "http"])
@pytest.mark.parametrize("given", ["wrong", "none"])
def test_a_407_is_a_clear_error_naming_the_proxy(scheme: str, given: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with origin() as endpoint, forward_proxy.running(credentials=("user", "right")) as proxy:
        url = proxy.url.replace("://", "://user:hunter2@") if given == "wrong" else proxy.url
        monkeypatch.setenv(f"{scheme.upper()}_PROXY", url)
        answers = ask(f"{scheme}://endpoint.test:{endpoint.port}/v1", count=1)
    error = answers[0]
    assert isinstance(error, ProxyRefusedError), error
    text = str(error)
    shown = proxy.url.replace("://", "://user:***@") if given == "wrong" else proxy.url
    assert f"the proxy {shown} ({scheme.upper()}_PROXY) answered HTTP 407" in text and "hunter2" not in text
    assert ("check the user and password" if given == "wrong" else "USER:PASSWORD@") in text
    assert [seen.status for seen in proxy.seen] == [407] and endpoint.requests == []


@pytest.mark.parametrize(("status", "final"), [(403, True), (503, False)])
def test_a_refused_connect_names_the_proxy_and_its_status(status: int, final: bool,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    with forward_proxy.running() as proxy:
        proxy.refuse_connect = status
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        error = ask("https://endpoint.test:8443/v1", count=1)[0]
    assert isinstance(error, UpstreamError) and isinstance(error, ProxyRefusedError) is final
    assert f"the proxy {proxy.url} (HTTPS_PROXY) answered HTTP {status} " in str(error)
    assert "a tunnel to endpoint.test:8443" in str(error)


def test_an_unreachable_proxy_is_a_connection_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    with forward_proxy.running() as proxy:
        url = proxy.url
    monkeypatch.setenv("HTTPS_PROXY", url)  # nothing listens there any more
    monkeypatch.setenv("HTTP_PROXY", url)
    for scheme in ("https", "http"):
        error = ask(f"{scheme}://endpoint.test:8443/v1", count=1)[0]
        assert isinstance(error, ConnectionError) and f"the proxy {url} " in str(error), error


# --- the whole adapter proxy -----------------------------------------------------------------------------------------

def run_adapter(url: str, tmp_path: Path) -> tuple[list[tuple[int, Any]], Any]:
    """Start the adapter proxy for ``url``; a harness (aiohttp, which ignores the proxy variables) sends a chat
    request and lists the models (a pass-through path)."""
    config = {"processes": 1, "interceptors": [
        {"name": "response_stats"},
        {"name": "endpoint", "config": {"backoff_initial": 0.01, "backoff_max": 0.02}}]}

    async def main() -> tuple[list[tuple[int, Any]], Any]:
        proxy = Proxy(url, AdapterConfig.model_validate(config), output_dir=tmp_path, timeout=5, max_retries=2)
        await proxy.start()
        try:
            replies = []
            async with aiohttp.ClientSession() as session:
                async with session.post(f"{proxy.origin}/v1/chat/completions",
                                        json={"model": "m", "messages": [{"role": "user", "content": "hi"}]}) as r:
                    replies.append((r.status, json.loads(await r.read())))
                async with session.get(f"{proxy.origin}/v1/models") as r:
                    replies.append((r.status, json.loads(await r.read())))
        finally:
            await proxy.stop()
        return replies, proxy.usage()

    return asyncio.run(main())


@pytest.mark.usefixtures("trusted")
def test_a_chat_request_reaches_the_endpoint_through_the_forward_proxy(ca: trustme.CA, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    with origin(server_tls(ca, "endpoint.test")) as endpoint, forward_proxy.running(credentials=("u", "p")) as fwd:
        monkeypatch.setenv("HTTPS_PROXY", fwd.url.replace("://", "://u:p@"))
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1,::1")  # what the runtime gives the harness
        replies, usage = run_adapter(f"https://endpoint.test:{endpoint.port}/v1/chat/completions", tmp_path)
    assert replies == [(200, ANSWER), (200, {"data": [{"id": "m"}]})]
    assert [(method, path) for method, path, _, _ in endpoint.requests] == [("POST", "/v1/chat/completions"),
                                                                           ("GET", "/v1/models")]
    assert fwd.seen == [Seen(1, "CONNECT", f"endpoint.test:{endpoint.port}", "match", 200)]
    assert usage.requests == 1 and usage.errors == {}


def test_the_harness_gets_the_proxys_refusal_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with origin() as endpoint, forward_proxy.running(credentials=("u", "right")) as fwd:
        monkeypatch.setenv("HTTP_PROXY", fwd.url.replace("://", "://u:hunter2@"))
        replies, usage = run_adapter(f"http://endpoint.test:{endpoint.port}/v1/chat/completions", tmp_path)
    (chat_status, chat), (models_status, models) = replies
    assert chat_status == 502 and "answered HTTP 407" in chat["error"]["message"]
    assert models_status == 502 and "answered HTTP 407" in models["error"]["message"]
    assert "hunter2" not in json.dumps(replies)
    assert [seen.status for seen in fwd.seen] == [407, 407]  # one each: a 407 is not retried
    assert usage.errors == {"proxy_refused": 1} and endpoint.requests == []

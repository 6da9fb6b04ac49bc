"""The deterministic test endpoint (tests/endpoint): its rules, its errors, its recording, its CLI."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, REPO
from tests.endpoint.routes import ROUTES, Reply, Route, Settings
from tests.endpoint.server import EndpointServer, serve

DATA = FIXTURES / "data"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EndpointServer]:
    running = serve(record=tmp_path / "requests.jsonl")
    try:
        yield running
    finally:
        running.shutdown()


def call(
    server: EndpointServer,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One request on a fresh connection; returns the status and the decoded JSON body."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        connection.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def chat(server: EndpointServer, content: str, **params: Any) -> dict[str, Any]:
    status, body = call(
        server, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": content}], **params}
    )
    assert status == 200, body
    result: dict[str, Any] = body
    return result


def completion(server: EndpointServer, **params: Any) -> dict[str, Any]:
    status, body = call(server, "POST", "/v1/completions", {"model": "test-model", **params})
    assert status == 200, body
    result: dict[str, Any] = body
    return result


def tokenize(server: EndpointServer, text: str) -> list[int]:
    status, body = call(server, "POST", "/tokenize", {"prompt": text, "add_special_tokens": False})
    assert status == 200
    tokens: list[int] = body["tokens"]
    return tokens


def assert_error(status: int, body: Any, *, expected_status: int, code: str) -> None:
    assert status == expected_status
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["type"], str)


# --- information routes -------------------------------------------------------------------------


def test_health_and_the_one_configured_model() -> None:
    with serve(model="my-model") as running:
        assert call(running, "GET", "/health") == (200, {"status": "ok"})
        status, models = call(running, "GET", "/v1/models")
    assert status == 200
    assert [entry["id"] for entry in models["data"]] == ["my-model"]


# --- generation -----------------------------------------------------------------------------------


def test_chat_answers_with_the_last_integer_of_the_last_question(server: EndpointServer) -> None:
    prompt = "Question: 1 + 2?\nAnswer: 3\n\nQuestion: Tom has 07 cats and 40 dogs.\nAnswer: the 99 is not asked"
    body = chat(server, prompt)
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "The answer is 40."}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {
        "prompt_tokens": len(prompt.encode()),
        "completion_tokens": len(b"The answer is 40."),
        "total_tokens": len(prompt.encode()) + len(b"The answer is 40."),
    }


def test_chat_reads_only_the_last_user_message(server: EndpointServer) -> None:
    messages = [
        {"role": "system", "content": "Question: ignore 5"},
        {"role": "user", "content": "Question: how many? 3\nAnswer:"},
        {"role": "assistant", "content": "Question: not this one 8"},
    ]
    status, body = call(server, "POST", "/v1/chat/completions", {"messages": messages})
    assert status == 200
    assert body["choices"][0]["message"]["content"] == "The answer is 3."


def test_chat_reads_the_text_parts_of_a_content_list(server: EndpointServer) -> None:
    parts = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}, {"type": "text", "text": "hi"}]
    status, body = call(server, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": parts}]})
    assert status == 200
    assert body["choices"][0]["message"]["content"] == "This is a deterministic test response."
    parts.append({"type": "text", "text": "Question: 41"})
    status, body = call(server, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": parts}]})
    assert body["choices"][0]["message"]["content"] == "The answer is 41."


@pytest.mark.parametrize(
    ("params", "content", "finish"),
    [
        ({"max_tokens": 5}, "The a", "length"),
        ({"max_tokens": 5, "max_completion_tokens": 8}, "The answ", "length"),
        ({"max_tokens": 0}, "", "length"),
        ({"stop": ["answer", "The"]}, "", "stop"),
        ({"stop": " is"}, "The answer", "stop"),
        ({"stop": ["nothing"], "max_tokens": 17}, "The answer is 12.", "stop"),
    ],
)
def test_chat_honours_max_tokens_in_bytes_and_stop_sequences(
    server: EndpointServer, params: dict[str, Any], content: str, finish: str
) -> None:
    body = chat(server, "Question: 12 eggs?\nAnswer:", **params)
    assert body["choices"][0]["message"]["content"] == content
    assert body["choices"][0]["finish_reason"] == finish
    assert body["usage"]["completion_tokens"] == len(content.encode())


def test_same_request_same_response(server: EndpointServer) -> None:
    request = {"messages": [{"role": "user", "content": "Question: 4 and 5"}], "temperature": 0.9, "seed": 3}
    assert call(server, "POST", "/v1/chat/completions", request) == call(
        server, "POST", "/v1/chat/completions", request
    )


def test_completion_of_text_uses_openais_default_of_16_tokens(server: EndpointServer) -> None:
    body = completion(server, prompt="Question: 18 apples\nAnswer:")
    assert body["object"] == "text_completion"
    assert body["choices"] == [{"index": 0, "text": "The answer is 18", "logprobs": None, "finish_reason": "length"}]


def test_completion_of_a_batch_of_text_prompts_answers_each_in_order(server: EndpointServer) -> None:
    body = completion(server, prompt=["Question: 1", "Question: 22", "no question"], max_tokens=100)
    assert [choice["text"] for choice in body["choices"]] == [
        "The answer is 1.",
        "The answer is 22.",
        "This is a deterministic test response.",
    ]
    assert [choice["index"] for choice in body["choices"]] == [0, 1, 2]


def test_streaming_chat_sends_the_same_text_as_events(server: EndpointServer) -> None:
    request = {
        "messages": [{"role": "user", "content": "Question: 6"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("POST", "/v1/chat/completions", body=json.dumps(request))
    response = connection.getresponse()
    assert response.getheader("Content-Type") == "text/event-stream"
    lines = [line for line in response.read().decode().split("\n\n") if line]
    connection.close()
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    text = "".join(choice["delta"].get("content", "") for event in events for choice in event["choices"])
    assert text == "The answer is 6."
    assert events[-1]["usage"]["completion_tokens"] == len(text)


# --- loglikelihood: echo + logprobs on token ids, as lm-eval's local-completions asks ------------


def test_echo_logprobs_on_token_id_batches(server: EndpointServer) -> None:
    prompts = [tokenize(server, "Question: Sky?\nAnswer: blue"), tokenize(server, "Q\u00e9")]
    body = completion(server, prompt=prompts, max_tokens=1, logprobs=1, echo=True, temperature=0)
    assert len(body["choices"]) == 2
    for prompt, choice in zip(prompts, body["choices"], strict=True):
        logprobs = choice["logprobs"]
        generated = tokenize(server, "T")  # the first byte of either reply
        assert len(logprobs["tokens"]) == len(prompt) + 1
        assert logprobs["token_logprobs"][0] is None
        assert logprobs["top_logprobs"][0] is None
        assert logprobs["token_logprobs"][1:] == [-token / 64 for token in [*prompt, *generated][1:]]
        for token, top in zip(logprobs["tokens"][1:], logprobs["top_logprobs"][1:], strict=True):
            assert top["\u0000"] == 0.0  # byte 0 is always the most likely token
            assert token in top
    assert body["choices"][1]["text"] == "Q\u00e9" + "This is a deterministic test response."[:1]
    assert body["usage"]["prompt_tokens"] == sum(len(prompt) for prompt in prompts)


def test_continuation_loglikelihood_is_minus_its_byte_sum_over_64(server: EndpointServer) -> None:
    context, continuation = "Question: Which gas?\nAnswer:", " carbon dioxide"
    context_ids = tokenize(server, context)
    whole = tokenize(server, context + continuation)
    body = completion(server, prompt=[whole], max_tokens=1, logprobs=1, echo=True)
    # lm-eval's LocalCompletionsAPI.parse_logprobs: sum(token_logprobs[ctxlen:-1]), greedy if each is top
    logprobs = body["choices"][0]["logprobs"]
    ctxlen = len(context_ids)
    total = sum(logprobs["token_logprobs"][ctxlen:-1])
    greedy = all(
        value == max(top.values())
        for value, top in zip(logprobs["token_logprobs"][ctxlen:-1], logprobs["top_logprobs"][ctxlen:-1], strict=True)
    )
    assert total == pytest.approx(-sum(continuation.encode()) / 64)
    assert not greedy


# --- tokenizer routes -----------------------------------------------------------------------------


def test_tokenizer_is_byte_level_with_an_end_of_text_token(server: EndpointServer) -> None:
    status, info = call(server, "GET", "/tokenizer_info")
    assert status == 200
    assert info["eos_token"] == "<|endoftext|>"
    assert tokenize(server, "<|endoftext|>") == [256]
    text = "Aé€ x<|endoftext|>y"
    tokens = tokenize(server, text)
    assert tokens == [*"Aé€ x".encode(), 256, *b"y"]
    assert call(server, "POST", "/detokenize", {"tokens": tokens}) == (200, {"prompt": text})


def test_detokenize_rejects_ids_outside_the_vocabulary(server: EndpointServer) -> None:
    status, body = call(server, "POST", "/detokenize", {"tokens": [65, 257]})
    assert_error(status, body, expected_status=400, code="invalid_value")
    assert "257" in body["error"]["message"]


# --- bad requests -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "payload", "status", "code"),
    [
        ("POST /v1/chat/completions", b"{not json", 400, "invalid_json"),
        ("POST /v1/chat/completions", b"[1, 2]", 400, "invalid_json"),
        ("POST /v1/chat/completions", b"", 400, "invalid_json"),
        ("POST /v1/chat/completions", b'{"model": "test-model"}', 400, "missing_field"),
        ("POST /v1/chat/completions", b'{"messages": [{"content": "x"}]}', 400, "invalid_value"),
        ("POST /v1/chat/completions", b'{"messages": [{"role": "user", "content": 5}]}', 400, "invalid_value"),
        (
            "POST /v1/chat/completions",
            b'{"messages": [{"role": "user", "content": "x"}], "n": 2}',
            400,
            "unsupported_value",
        ),
        (
            "POST /v1/chat/completions",
            b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": -1}',
            400,
            "invalid_value",
        ),
        (
            "POST /v1/chat/completions",
            b'{"messages": [{"role": "user", "content": "x"}], "model": "other"}',
            404,
            "model_not_found",
        ),
        ("POST /v1/completions", b'{"max_tokens": 3}', 400, "missing_field"),
        ("POST /v1/completions", b'{"prompt": [[1, 300]]}', 400, "invalid_value"),
        ("POST /v1/completions", b'{"prompt": {"a": 1}}', 400, "invalid_value"),
        ("POST /v1/completions", b'{"prompt": "x", "stop": 3}', 400, "invalid_value"),
        ("POST /tokenize", b"{}", 400, "missing_field"),
        ("GET /v1/nothing", None, 404, "not_found"),
        ("GET /v1/chat/completions", None, 405, "method_not_allowed"),
    ],
)
def test_bad_requests_get_openai_errors_and_the_server_lives_on(
    server: EndpointServer, target: str, payload: bytes | None, status: int, code: str
) -> None:
    method, path = target.split(" ")
    got_status, body = call(server, method, path, raw=payload)
    assert_error(got_status, body, expected_status=status, code=code)
    assert call(server, "GET", "/health") == (200, {"status": "ok"})


def test_a_bug_in_a_route_is_a_500_and_the_server_lives_on(
    server: EndpointServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(settings: Settings, body: dict[str, Any]) -> Reply:
        raise RuntimeError("boom")

    monkeypatch.setitem(ROUTES, "/v1/models", Route("GET", "info", broken))
    status, body = call(server, "GET", "/v1/models")
    assert_error(status, body, expected_status=500, code="internal")
    assert body["error"]["type"] == "server_error"
    assert call(server, "GET", "/health") == (200, {"status": "ok"})


def test_a_bad_request_does_not_break_a_kept_alive_connection(server: EndpointServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("POST", "/v1/completions", body=b"{oops")
    first = connection.getresponse()
    assert first.status == 400
    first.read()
    connection.request("POST", "/v1/completions", body=json.dumps({"prompt": "Question: 9", "max_tokens": 50}))
    second = connection.getresponse()
    assert second.status == 200
    assert json.loads(second.read())["choices"][0]["text"] == "The answer is 9."
    connection.close()


def test_a_chunked_request_body_is_read(server: EndpointServer) -> None:
    payload = json.dumps({"prompt": "Question: 31", "max_tokens": 50}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("POST", "/v1/completions", body=iter([payload[:10], payload[10:]]), encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 200
    assert json.loads(response.read())["choices"][0]["text"] == "The answer is 31."
    connection.close()


# --- recording and concurrency ----------------------------------------------------------------------


def test_every_request_is_recorded_in_memory_and_as_jsonl(server: EndpointServer, tmp_path: Path) -> None:
    secret = {"Authorization": "Bearer sk-test-key"}
    call(
        server,
        "POST",
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "hi"}], "top_p": 0.5},
        headers=secret,
    )
    call(server, "POST", "/tokenize", {"prompt": "x"})
    call(server, "POST", "/v1/completions", raw=b"{bad")
    call(server, "GET", "/missing")

    records = server.requests
    assert [(r.seq, r.method, r.path, r.kind, r.status) for r in records] == [
        (0, "POST", "/v1/chat/completions", "inference", 200),
        (1, "POST", "/tokenize", "tokenizer", 200),
        (2, "POST", "/v1/completions", "inference", 400),
        (3, "GET", "/missing", "unknown", 404),
    ]
    assert records[0].header("authorization") == "Bearer sk-test-key"
    assert records[0].body == {"messages": [{"role": "user", "content": "hi"}], "top_p": 0.5}
    assert records[2].body is None
    lines = (tmp_path / "requests.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [record.to_json() for record in records]


def test_small_requests_on_a_kept_alive_connection_are_fast(server: EndpointServer) -> None:
    # With Nagle's algorithm on, each response waits for a delayed ACK (~40 ms): 50 requests take 2 s.
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    started = time.perf_counter()
    for number in range(50):
        connection.request("POST", "/v1/completions", body=json.dumps({"prompt": f"Question: {number}"}))
        assert connection.getresponse().read()
    elapsed = time.perf_counter() - started
    connection.close()
    assert elapsed < 1.0


def test_twenty_parallel_requests_are_all_answered_and_recorded(server: EndpointServer) -> None:
    def ask(number: int) -> str:
        status, body = call(
            server, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": f"Question: {number}"}]}
        )
        assert status == 200
        text: str = body["choices"][0]["message"]["content"]
        return text

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(ask, range(20)))
    assert answers == [f"The answer is {number}." for number in range(20)]
    records = [r for r in server.requests if r.kind == "inference"]
    assert sorted(r.seq for r in records) == list(range(20))
    assert sorted(r.body["messages"][0]["content"] for r in records) == sorted(f"Question: {n}" for n in range(20))


# --- the fixture data's expected scores (README), computed the way lm-eval does ----------------------


def _rows(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines()]


def test_gsm8k_sample_scores_0_6_flexible_and_0_strict(server: EndpointServer) -> None:
    flexible = strict = 0
    for row in _rows("gsm8k_sample.jsonl"):
        reply = chat(server, f"Question: {row['question']}\nAnswer:", stop=["Question:", "</s>", "<|im_end|>"])
        text = reply["choices"][0]["message"]["content"]
        gold = row["answer"].split("#### ")[-1]
        extracted = re.findall(r"(-?[$0-9.,]{2,})|(-?[0-9]+)", text)
        candidate = next(group for group in extracted[-1] if group) if extracted else "[invalid]"
        flexible += re.sub(r"\.$", "", candidate.replace(",", "").replace("$", "")) == gold
        strict += re.search(r"#### (\-?[0-9\.\,]+)", text) is not None
    assert (flexible, strict) == (3, 0)


def test_arc_sample_scores_0_6_acc_and_0_4_acc_norm(server: EndpointServer) -> None:
    acc = acc_norm = 0
    for row in _rows("arc_challenge_sample.jsonl"):
        context = f"Question: {row['question']}\nAnswer:"
        ctxlen = len(tokenize(server, context))
        texts: list[str] = row["choices"]["text"]
        lls = []
        for text in texts:
            body = completion(
                server, prompt=[tokenize(server, f"{context} {text}")], max_tokens=1, logprobs=1, echo=True
            )
            lls.append(sum(body["choices"][0]["logprobs"]["token_logprobs"][ctxlen:-1]))
        assert lls == [-sum(f" {text}".encode()) / 64 for text in texts]
        gold = row["choices"]["label"].index(row["answerKey"])
        acc += lls.index(max(lls)) == gold
        normalized = [ll / len(text) for ll, text in zip(lls, texts, strict=True)]
        acc_norm += normalized.index(max(normalized)) == gold
    assert (acc, acc_norm) == (3, 2)


# --- running it as a process ----------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["-m", "tests.endpoint"], [str(REPO / "tests" / "endpoint" / "server.py")]])
def test_runs_as_a_process_and_stops_on_sigterm(command: list[str], tmp_path: Path) -> None:
    record = tmp_path / "record.jsonl"
    cwd = REPO if command[0] == "-m" else tmp_path
    process = subprocess.Popen(
        [sys.executable, *command, "--port", "0", "--quiet", "--record", str(record)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": ""},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.fullmatch(r"listening on http://127\.0\.0\.1:(\d+)\n", line)
        assert match, line
        connection = http.client.HTTPConnection("127.0.0.1", int(match.group(1)), timeout=10)
        connection.request("GET", "/health")
        assert connection.getresponse().status == 200
        connection.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert json.loads(record.read_text())["path"] == "/health"


# --- a known latency ----------------------------------------------------------------------------------------


def timed(action: Any) -> float:
    start = time.monotonic()
    action()
    return time.monotonic() - start


def test_delay_holds_each_inference_answer_and_nothing_else() -> None:
    with serve(delay=0.3) as slow:
        assert timed(lambda: chat(slow, "Question: 2+3? Answer:")) >= 0.3
        assert timed(lambda: completion(slow, prompt="Question: 4? Answer:")) >= 0.3
        assert timed(lambda: call(slow, "GET", "/v1/models")) < 0.2  # info routes are not held
        assert chat(slow, "Question: 2+3? Answer:")["choices"][0]["message"]["content"] == "The answer is 3."
    with serve() as fast:
        assert timed(lambda: chat(fast, "Question: 2+3? Answer:")) < 0.2
    with pytest.raises(ValueError, match="delay must be >= 0"):
        serve(delay=-1)


def test_delay_holds_concurrent_requests_in_parallel() -> None:
    """Four requests at once take the delay once, not four times: a load generator measures the delay."""
    with serve(delay=0.4) as slow, ThreadPoolExecutor(4) as pool:
        took = timed(lambda: list(pool.map(lambda n: chat(slow, f"Question: {n}? Answer:"), range(4))))
    assert 0.4 <= took < 0.8


def test_cli_delay_option(tmp_path: Path) -> None:
    bad = subprocess.run([sys.executable, "-m", "tests.endpoint", "--delay", "-1"], cwd=REPO, capture_output=True,
                         text=True, timeout=30, check=False)
    assert bad.returncode == 2 and "--delay must be >= 0" in bad.stderr
    process = subprocess.Popen([sys.executable, "-m", "tests.endpoint", "--port", "0", "--quiet", "--delay", "0.3"],
                               cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        match = re.fullmatch(r"listening on http://127\.0\.0\.1:(\d+)\n", process.stdout.readline())
        assert match
        connection = http.client.HTTPConnection("127.0.0.1", int(match.group(1)), timeout=10)
        body = json.dumps({"messages": [{"role": "user", "content": "hi"}]})

        def ask() -> bytes:
            connection.request("POST", "/v1/chat/completions", body=body)
            return connection.getresponse().read()

        took = timed(ask)
        connection.close()
        assert took >= 0.3
    finally:
        process.terminate()
        process.wait(timeout=10)

"""The fault-injecting endpoint (tests/faults): each fault happens as planned, and a retry then succeeds.

The successful answer must be byte for byte what tests/endpoint answers, so scores stay predictable.
"""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.endpoint.server import EndpointServer, serve
from tests.faults.plan import DEFAULT_PLAN, Fault, FaultPlan, PlanError, request_key
from tests.faults.server import FaultyServer, serve_faulty

REPO = Path(__file__).resolve().parents[2]
CHAT = "/v1/chat/completions"
CLIENT_TIMEOUT = 1.0


@dataclass(frozen=True)
class Outcome:
    """What a client saw: a response, or the exception that ended the exchange."""

    status: int | None = None
    body: bytes = b""
    retry_after: str | None = None
    error: type[BaseException] | None = None


def chat_body(question: str) -> bytes:
    """A chat request whose deterministic answer is ``The answer is <last integer>.``."""
    payload = {"model": "test-model", "messages": [{"role": "user", "content": f"Question: {question} Answer:"}]}
    return json.dumps(payload).encode("utf-8")


def post(port: int, body: bytes, path: str = CHAT, *, timeout: float = CLIENT_TIMEOUT) -> Outcome:
    """One request on a fresh connection, as a retrying client would send each attempt."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return Outcome(response.status, response.read(), response.getheader("Retry-After"))
    except (OSError, http.client.HTTPException) as error:
        return Outcome(error=type(error))
    finally:
        connection.close()


def get(port: int, path: str) -> Outcome:
    """A GET on a fresh connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return Outcome(response.status, response.read())
    finally:
        connection.close()


@pytest.fixture(scope="module")
def reference() -> Iterator[EndpointServer]:
    """tests/endpoint itself: the answers the faulty endpoint must give on a successful attempt."""
    with serve() as server:
        yield server


def expected(reference: EndpointServer, body: bytes, path: str = CHAT) -> bytes:
    """tests/endpoint's answer to this request."""
    outcome = post(reference.port, body, path)
    assert outcome.status == 200
    return outcome.body


# --- the plan language and the deterministic choice -------------------------------------------------------------


def test_parse_reads_steps_fractions_and_repeat() -> None:
    plan = FaultPlan.parse("429:0.2, ok+503+drop:0.1, 500*:0.05", seed=7)
    assert [s.spec for s in plan.scenarios] == ["429:0.2", "ok+503+drop:0.1", "500*:0.05"]
    two_step = plan.scenarios[1]
    assert [two_step.fault_for(n).label for n in (1, 2, 3, 4, 5)] == ["ok", "503", "drop", "ok", "ok"]
    forever = plan.scenarios[2]
    assert [forever.fault_for(n).label for n in (1, 2, 30)] == ["500", "500", "500"]
    assert FaultPlan.parse("none").scenarios == ()
    assert FaultPlan.parse("timeout").scenarios[0].fraction == 1.0


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("429:0.6,500:0.5", "add up to 1.1"),
        ("200", "unknown step '200'"),
        ("600", "unknown step '600'"),
        ("slow", "unknown step 'slow'"),
        ("429+:0.1", "unknown step ''"),
        ("*:0.1", "no steps"),
        ("429:half", "not a number"),
        ("429:0", "must be in (0, 1]"),
    ],
)
def test_parse_rejects_bad_specs_with_the_reason(spec: str, complaint: str) -> None:
    with pytest.raises(PlanError, match=complaint.replace("(", r"\(").replace("]", r"\]")):
        FaultPlan.parse(spec)


def test_request_key_ignores_json_formatting_but_not_content_or_path() -> None:
    compact = b'{"a":1,"b":[1,2]}'
    spaced = b'{ "b": [1, 2], "a": 1 }'
    assert request_key("POST", CHAT, compact) == request_key("POST", CHAT, spaced)
    assert request_key("POST", CHAT, compact) != request_key("POST", CHAT, b'{"a":2,"b":[1,2]}')
    assert request_key("POST", CHAT, compact) != request_key("POST", "/v1/completions", compact)
    assert request_key("POST", CHAT, b"not json") != request_key("POST", CHAT, b"not json!")


def test_fractions_are_seeded_and_close_to_the_plan() -> None:
    keys = [request_key("POST", CHAT, chat_body(f"row {i}")) for i in range(4000)]
    plan = FaultPlan.parse("429:0.25,drop:0.1", seed=1)
    first = Counter(plan.fault_for(key, 1).label for key in keys)
    assert abs(first["429"] - 1000) < 120
    assert abs(first["drop"] - 400) < 80
    assert abs(first["ok"] - 2600) < 130
    assert all(plan.fault_for(key, 2) == Fault("ok") for key in keys)
    again = FaultPlan.parse("429:0.25,drop:0.1", seed=1)
    assert [again.fault_for(key, 1) for key in keys] == [plan.fault_for(key, 1) for key in keys]
    other_seed = FaultPlan.parse("429:0.25,drop:0.1", seed=2)
    assert [other_seed.fault_for(key, 1) for key in keys] != [plan.fault_for(key, 1) for key in keys]


# --- each fault over HTTP, then a successful retry ---------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_error_status_then_the_retry_gets_the_endpoint_answer(reference: EndpointServer, status: int) -> None:
    body = chat_body("What is 3 + 4?")
    with serve_faulty(str(status), retry_after=1) as server:
        first = post(server.port, body)
        retry = post(server.port, body)
        assert [r.fault for r in server.requests] == [str(status), "ok"]
    assert first.status == status
    error = json.loads(first.body)["error"]
    assert "injected fault" in error["message"]
    assert first.retry_after == ("1" if status == 429 else None)
    assert retry.status == 200
    assert retry.body == expected(reference, body)
    assert json.loads(retry.body)["choices"][0]["message"]["content"] == "The answer is 4."


def test_timeout_holds_the_answer_past_the_client_timeout_then_the_retry_is_fast(reference: EndpointServer) -> None:
    body = chat_body("What is 10 - 3?")
    with serve_faulty("timeout", delay=5.0) as server:
        started = time.monotonic()
        first = post(server.port, body, timeout=0.3)
        waited = time.monotonic() - started
        retry_started = time.monotonic()
        retry = post(server.port, body)
        retry_took = time.monotonic() - retry_started
    assert first.error is TimeoutError
    assert 0.25 < waited < 2.0
    assert retry.status == 200
    assert retry.body == expected(reference, body)
    assert retry_took < 1.0


def test_timeout_answers_late_to_a_patient_client(reference: EndpointServer) -> None:
    body = chat_body("What is 1 + 1?")
    with serve_faulty("timeout", delay=0.4) as server:
        started = time.monotonic()
        first = post(server.port, body, timeout=5.0)
        took = time.monotonic() - started
    assert first.status == 200
    assert first.body == expected(reference, body)
    assert took >= 0.4


def test_drop_closes_without_a_response_then_the_retry_succeeds(reference: EndpointServer) -> None:
    body = chat_body("What is 6 * 7?")
    with serve_faulty("drop") as server:
        first = post(server.port, body)
        retry = post(server.port, body)
        statuses = [r.status for r in server.requests]
    assert first.error is http.client.RemoteDisconnected
    assert retry.status == 200
    assert retry.body == expected(reference, body)
    assert statuses == [None, 200]


def test_reset_aborts_the_connection_then_the_retry_succeeds(reference: EndpointServer) -> None:
    body = chat_body("What is 9 - 2?")
    with serve_faulty("reset") as server:
        first = post(server.port, body)
        retry = post(server.port, body)
    assert first.error is ConnectionResetError  # a RST, not the orderly close of 'drop'
    assert retry.status == 200
    assert retry.body == expected(reference, body)


def test_malformed_is_a_200_with_invalid_json_then_the_retry_succeeds(reference: EndpointServer) -> None:
    body = chat_body("What is 12 / 4?")
    with serve_faulty("malformed") as server:
        first = post(server.port, body)
        retry = post(server.port, body)
    good = expected(reference, body)
    assert first.status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(first.body)
    assert good.startswith(first.body) and len(first.body) < len(good)
    assert retry.status == 200
    assert retry.body == good


def test_the_planned_attempt_gets_the_fault_and_the_others_succeed() -> None:
    body = chat_body("What is 2 + 2?")
    with serve_faulty("ok+503") as server:
        statuses = [post(server.port, body).status for _ in range(3)]
        attempts = [r.attempt for r in server.requests]
    assert statuses == [200, 503, 200]
    assert attempts == [1, 2, 3]


def test_a_repeating_fault_never_lets_the_request_through() -> None:
    body = chat_body("What is 5 + 5?")
    with serve_faulty("500+502*") as server:
        statuses = [post(server.port, body).status for _ in range(5)]
    assert statuses == [500, 502, 502, 502, 502]


def test_match_chooses_the_one_request_that_fails_and_the_others_are_still_counted() -> None:
    chosen, other = chat_body("Row 7: what is 7 + 1?"), chat_body("Row 8: what is 8 + 1?")
    with serve_faulty("500*", match="Row 7:") as server:
        statuses = [post(server.port, body).status for body in (chosen, other, chosen, other, chosen)]
        attempts = server.attempts
    assert statuses == [500, 200, 500, 200, 500]
    assert attempts == {request_key("POST", CHAT, chosen): 3, request_key("POST", CHAT, other): 2}


def test_match_looks_inside_json_strings_not_at_escapes_or_keys() -> None:
    plan = FaultPlan.parse("500", match='say "hi"\n')
    body = json.dumps({"messages": [{"role": "user", "content": [{"type": "text", "text": 'Please say "hi"\n!'}]}]})
    assert plan.selects(body.encode())
    assert not FaultPlan.parse("500", match="messages").selects(body.encode())
    assert FaultPlan.parse("500", match="plain").selects(b"not json but plain text")
    assert FaultPlan.parse("500").selects(b"anything")
    with pytest.raises(PlanError, match="match must not be empty"):
        FaultPlan.parse("500", match="")


def test_attempts_are_counted_per_distinct_request() -> None:
    with serve_faulty("429") as server:
        a, b = chat_body("What is 1 + 2?"), chat_body("What is 2 + 3?")
        statuses = [post(server.port, body).status for body in (a, b, a, b)]
        attempts = server.attempts
    assert statuses == [429, 429, 200, 200]
    assert sorted(attempts.values()) == [2, 2]


def test_only_inference_routes_are_faulted_unless_all_routes() -> None:
    with serve_faulty("503") as server:
        assert get(server.port, "/v1/models").status == 200
        assert post(server.port, b'{"prompt": "hi"}', "/tokenize").status == 200
        assert server.counts == Counter()
    with serve_faulty("503", all_routes=True) as server:
        assert get(server.port, "/v1/models").status == 503
        assert get(server.port, "/v1/models").status == 200


def test_endpoint_errors_pass_through_on_a_successful_attempt() -> None:
    bad_model = json.dumps({"model": "other", "messages": [{"role": "user", "content": "hi"}]}).encode()
    with serve_faulty("none") as server:
        outcome = post(server.port, bad_model)
    assert outcome.status == 404
    assert json.loads(outcome.body)["error"]["code"] == "model_not_found"


def test_a_retrying_client_gets_every_answer_through_the_default_plan(reference: EndpointServer) -> None:
    bodies = [chat_body(f"Row {i}: what is {i} + 1?") for i in range(60)]
    plan = FaultPlan.parse(DEFAULT_PLAN, seed=3, delay=5.0)
    answers: list[bytes] = []
    with serve_faulty(plan) as server:
        for body in bodies:
            for _attempt in range(3):
                outcome = post(server.port, body, timeout=0.3)
                if outcome.status == 200 and _is_json(outcome.body):
                    answers.append(outcome.body)
                    break
        counts = server.counts
        records = server.requests
    assert answers == [expected(reference, body) for body in bodies]
    planned = Counter(plan.fault_for(request_key("POST", CHAT, body), 1).label for body in bodies)
    assert counts == planned + Counter(ok=len(bodies) - planned["ok"])
    assert len({r.fault for r in records}) >= 5, "60 rows should meet most fault kinds under the default plan"


def test_records_go_to_a_jsonl_file(tmp_path: Path) -> None:
    record = tmp_path / "faults.jsonl"
    body = chat_body("What is 8 + 1?")
    with serve_faulty("502", record=record) as server:
        post(server.port, body)
        post(server.port, body)
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [(line["attempt"], line["fault"], line["status"]) for line in lines] == [(1, "502", 502), (2, "ok", 200)]
    assert lines[0]["key"] == request_key("POST", CHAT, body)
    assert lines[0]["body"]["messages"][0]["content"].startswith("Question: What is 8 + 1?")


def test_shutdown_does_not_wait_for_a_held_answer() -> None:
    server: FaultyServer = serve_faulty("timeout", delay=30.0)
    post(server.port, chat_body("What is 3 + 3?"), timeout=0.2)
    started = time.monotonic()
    server.shutdown()
    assert time.monotonic() - started < 2.0


# --- the command line -----------------------------------------------------------------------------------------------


def test_command_line_serves_the_plan_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.faults", "--port", "0", "--plan", "429", "--retry-after", "2", "--quiet"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), line
        port = int(line.split()[2].rsplit(":", 1)[1])
        first = post(port, chat_body("What is 4 + 4?"))
        retry = post(port, chat_body("What is 4 + 4?"))
        assert (first.status, first.retry_after, retry.status) == (429, "2", 200)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=10)
    assert code == 0


def test_command_line_rejects_a_bad_plan() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.faults", "--plan", "429:2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "--plan" in result.stderr and "(0, 1]" in result.stderr


def _is_json(raw: bytes) -> Any:
    try:
        json.loads(raw)
    except json.JSONDecodeError:
        return False
    return True

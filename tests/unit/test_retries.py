"""The retry policy the harness is rendered against: the proxy's effective values and its worst case for a request."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from orchestrator.runtime.proxy.endpoint import Endpoint
from orchestrator.runtime.retries import RetryPolicy, endpoint_policy, proxy_policy
from orchestrator.schema.adapter import EndpointConfig
from orchestrator.schema.framework import FrameworkDefinition
from orchestrator.schema.loading import load_model
from orchestrator.schema.resolve import RunRequest, resolve_run
from tests.unit.test_proxy import ANSWER, BODY, chat, run


def test_the_endpoint_config_wins_over_the_runs_values() -> None:
    assert endpoint_policy(EndpointConfig(), timeout=30, max_retries=5) == RetryPolicy(30, 5, 600)
    config = EndpointConfig(request_timeout=4, max_retries=0, max_retry_seconds=20)
    assert endpoint_policy(config, timeout=30, max_retries=5) == RetryPolicy(4, 0, 20)
    # The proxy builds its endpoint from the same rule.
    endpoint = Endpoint("http://127.0.0.1:9/v1/chat/completions", config, timeout=30, max_retries=5)
    assert (endpoint.timeout, endpoint.max_retries) == (4, 0)


def test_a_run_without_timeout_or_retries_gets_the_proxys_defaults(lm_eval_framework: Path) -> None:
    definition = load_model(FrameworkDefinition, lm_eval_framework)
    request = RunRequest(eval_type="gsm8k", model_id="m", model_url="http://localhost:8000/v1/chat/completions",
                         model_type="chat", output_dir="/tmp/out")
    evaluation = resolve_run(definition, request)
    params = evaluation.config.params.model_copy(update={"request_timeout": None, "max_retries": None})
    evaluation = evaluation.model_copy(update={"config": evaluation.config.model_copy(update={"params": params})})
    assert proxy_policy(evaluation) == RetryPolicy(60, 0, 600)


def test_the_budget_is_one_attempt_without_retries_else_the_retry_window_plus_one_attempt() -> None:
    assert RetryPolicy(timeout=7, max_retries=0, max_retry_seconds=600).budget_seconds == 7
    assert RetryPolicy(timeout=7, max_retries=1, max_retry_seconds=600).budget_seconds == 607
    assert RetryPolicy(timeout=7, max_retries=1, max_retry_seconds=600).attempts == 2


def test_the_budget_holds_where_attempts_times_timeout_plus_backoffs_does_not(tmp_path: Path) -> None:
    """A Retry-After longer than backoff_max is honoured up to max_retry_seconds: the proxy waits 1.2 s, then its
    second attempt times out after 0.5 s. attempts x timeout + the largest backoff (1.01 s) is exceeded; the budget
    (1.5 + 0.5 s) is not."""
    async def script(request: web.Request, attempt: int) -> web.StreamResponse:
        if attempt == 1:
            return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": "1.2"})
        await asyncio.sleep(5)
        return web.json_response(ANSWER)

    endpoint = {"request_timeout": 0.5, "max_retries": 1, "max_retry_seconds": 1.5,
                "backoff_initial": 0.01, "backoff_max": 0.01}
    policy = endpoint_policy(EndpointConfig.model_validate(endpoint), timeout=30, max_retries=5)
    replies, usage, upstream = run(script, {"interceptors": [{"name": "response_stats"}, {"name": "endpoint",
                                                                                           "config": endpoint}]},
                                   tmp_path, chat(BODY))
    assert replies[0][0] == 504 and sum(upstream.attempts.values()) == policy.attempts == 2
    assert usage.latency is not None
    took = usage.latency.max_ms / 1000
    assert policy.attempts * policy.timeout + 0.01 < took <= policy.budget_seconds

"""One owner of retries and timeouts: the adapter proxy when it is on, the harness when it is off.

With the adapter on, the proxy's endpoint interceptor retries each request (up to ``max_retries`` retries of
``request_timeout`` seconds each, with backoff, no new attempt after ``max_retry_seconds``). The harness is then
rendered to make one attempt and to wait longer than the proxy can take: its own retries would multiply the
proxy's attempts, and a shorter timeout would cut off a request the proxy is still retrying. With the adapter
off, the harness gets the run's ``max_retries`` and ``request_timeout``. Templates read the result as ``client``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from orchestrator.schema.adapter import AdapterConfig, EndpointConfig, EndpointInterceptor
from orchestrator.schema.auxiliary import MODEL_ROLE, proxied_endpoints
from orchestrator.schema.config import Evaluation

DEFAULT_TIMEOUT = 60.0
"""Seconds per attempt at the proxy when neither the run nor the endpoint interceptor sets one."""
MARGIN_SECONDS = 5
"""Added to the proxy's worst case for the harness's timeout, so that the proxy's own answer (its 504 naming the
timeout, or the endpoint's last error) reaches the harness first: the proxy's timers fire up to 0.05 s late and its
event loop may lag behind under load."""


@dataclass(frozen=True)
class RetryPolicy:
    """How the proxy's endpoint interceptor treats one request (the effective values, defaults applied)."""

    timeout: float
    """Seconds per attempt."""
    max_retries: int
    """Retries after the first attempt."""
    max_retry_seconds: float
    """No retry starts after this many seconds from the first attempt."""

    @property
    def attempts(self) -> int:
        """Attempts for a request that fails every time."""
        return self.max_retries + 1

    @property
    def budget_seconds(self) -> float:
        """The longest one request can take at the proxy.

        Every attempt starts before ``max_retry_seconds`` have passed (a backoff that would end later ends the
        retries instead) and lasts at most ``timeout``. Within that window, ``attempts x timeout`` plus the
        backoffs is no tighter bound, since an endpoint's ``Retry-After`` may ask for a wait up to the window's end.
        """
        return self.timeout if self.max_retries == 0 else self.max_retry_seconds + self.timeout


def endpoint_policy(config: EndpointConfig, *, timeout: float, max_retries: int) -> RetryPolicy:
    """The endpoint interceptor's values: its own config where set, else the run's ``timeout`` and ``max_retries``."""
    return RetryPolicy(timeout=config.request_timeout or timeout,
                       max_retries=config.max_retries if config.max_retries is not None else max_retries,
                       max_retry_seconds=config.max_retry_seconds)


def chain_policy(evaluation: Evaluation, adapter: AdapterConfig) -> RetryPolicy:
    """What a proxy of this run with the chain ``adapter`` does with each request."""
    params = evaluation.config.params
    config = next(i.config for i in adapter.interceptors if isinstance(i, EndpointInterceptor))
    return endpoint_policy(config, timeout=params.request_timeout or DEFAULT_TIMEOUT,
                           max_retries=params.max_retries or 0)


def proxy_policy(evaluation: Evaluation) -> RetryPolicy:
    """What the adapter proxy of this run does with each request."""
    return chain_policy(evaluation, evaluation.target.api_endpoint.adapter_config)


@dataclass(frozen=True)
class ClientSettings:
    """How the harness's own HTTP client is rendered (``client`` in command templates)."""

    proxy_retries: bool
    """The adapter proxy retries; the harness must not."""
    attempts: int | None
    """Attempts per request the harness makes itself, the first included (None: the harness's default)."""
    timeout: int | float | None
    """Seconds the harness waits for one answer (None: the harness's default)."""


def client_settings(evaluation: Evaluation) -> ClientSettings:
    """One attempt and a timeout beyond the proxy's budget with the adapter on; the run's own values without it.

    Both harnesses count attempts, not retries (lm-eval's ``max_retries=N`` and VLMEvalKit's ``retry=N`` each make N
    attempts; VLMEvalKit's ``retry=0`` makes none), so ``max_retries`` retries are ``max_retries + 1`` attempts.
    """
    if evaluation.target.api_endpoint.adapter_config.enabled:
        budget = proxy_policy(evaluation).budget_seconds
        return ClientSettings(proxy_retries=True, attempts=1, timeout=math.ceil(budget) + MARGIN_SECONDS)
    params = evaluation.config.params
    attempts = None if params.max_retries is None else params.max_retries + 1
    return ClientSettings(proxy_retries=False, attempts=attempts, timeout=params.request_timeout)


def auxiliary_clients(evaluation: Evaluation) -> dict[str, ClientSettings]:
    """How the harness's client for each proxied auxiliary endpoint (a judge, ...) is rendered, by role: one attempt
    and a timeout beyond that proxy's budget (``clients`` in command templates). An auxiliary endpoint without a
    proxy of its own is not listed: the harness keeps its own retries for it."""
    return {proxied.role: ClientSettings(proxy_retries=True, attempts=1, timeout=math.ceil(
                chain_policy(evaluation, proxied.adapter_config).budget_seconds) + MARGIN_SECONDS)
            for proxied in proxied_endpoints(evaluation) if proxied.role != MODEL_ROLE}

"""The adapter proxy's configuration: ``target.api_endpoint.adapter_config``.

An ordered list of interceptors, outermost first, each ``{name, enabled, config}``; the chain
always ends with ``endpoint`` (the one that talks to the real endpoint). Absent, the default
chain applies: response_stats, request_logging, response_logging, caching, endpoint.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CachingConfig(_Strict):
    """Answers keyed on the canonical request; a restarted run re-asks nothing already answered."""

    cache_dir: str | None = Field(default=None, description="Shared cache directory (default: <output_dir>/cache).")


class EndpointConfig(_Strict):
    """Timeouts, pooling and retries towards the real endpoint."""

    request_timeout: float | None = Field(default=None, gt=0,
                                          description="Seconds per attempt (default: config.params.request_timeout).")
    max_retries: int | None = Field(default=None, ge=0,
                                    description="Retries after the first attempt (default: config.params.max_retries).")
    max_retry_seconds: float = Field(default=600, gt=0, description="Give up retrying a request after this long.")
    backoff_initial: float = Field(default=0.5, ge=0, description="First backoff in seconds (doubles each retry).")
    backoff_max: float = Field(default=30, ge=0, description="Largest backoff in seconds (Retry-After may exceed it).")
    max_connections: int = Field(default=512, ge=1, description="Connection pool size.")
    first_byte_timeout: float | None = Field(
        default=None, gt=0, description="Streamed answers (stream: true): seconds per attempt until the first bytes of "
                                        "the answer's body arrive (default: request_timeout). Until then a failed "
                                        "attempt is retried; after that nothing can be.")
    idle_timeout: float | None = Field(
        default=None, gt=0, description="Streamed answers: seconds the endpoint may send nothing between two chunks "
                                        "(default: request_timeout); then the answer is cut off and the harness sees "
                                        "an incomplete stream.")


class LoggingConfig(_Strict):
    """Bounded logs of requests or responses under logs/."""

    max_records: int = Field(default=200, ge=0, description="Log at most this many records.")
    max_bytes: int = Field(default=65_536, ge=0, description="Truncate each logged body to this many bytes.")


class SystemMessageConfig(_Strict):
    """Put a system message into every chat request."""

    content: str = Field(description="The system message.")
    mode: Literal["prepend", "replace", "append"] = Field(
        default="replace", description="prepend/append to an existing system message, or replace it.")


class PayloadModifierConfig(_Strict):
    """Add, remove or rename request parameters."""

    add: dict[str, object] = Field(default_factory=dict, description="Parameters to set (overwriting).")
    remove: list[str] = Field(default_factory=list, description="Parameters to drop.")
    rename: dict[str, str] = Field(default_factory=dict, description="Parameters to rename, old -> new.")


class ReasoningConfig(_Strict):
    """Strip reasoning before the harness sees the answer."""

    start_tag: str = Field(default="<think>", description="Start of reasoning in the content.")
    end_tag: str = Field(default="</think>", description="End of reasoning in the content.")


class ResponseStatsConfig(_Strict):
    """Requests, cache hits, errors, tokens and latency; written to results.yml under usage."""

    request_records: bool = Field(
        default=True, description="Also write one record per request to logs/requests.jsonl (id, role, prompt key, "
                                  "status, cache hit, attempts, tokens, latency, error), which joins per-sample "
                                  "records to their requests.")


class _Interceptor(_Strict):
    enabled: bool = Field(default=True, description="Whether the interceptor runs.")


class CachingInterceptor(_Interceptor):
    name: Literal["caching"]
    config: CachingConfig = Field(default_factory=CachingConfig)


class EndpointInterceptor(_Interceptor):
    name: Literal["endpoint"]
    config: EndpointConfig = Field(default_factory=EndpointConfig)


class RequestLoggingInterceptor(_Interceptor):
    name: Literal["request_logging"]
    config: LoggingConfig = Field(default_factory=LoggingConfig)


class ResponseLoggingInterceptor(_Interceptor):
    name: Literal["response_logging"]
    config: LoggingConfig = Field(default_factory=LoggingConfig)


class SystemMessageInterceptor(_Interceptor):
    name: Literal["system_message"]
    config: SystemMessageConfig


class PayloadModifierInterceptor(_Interceptor):
    name: Literal["payload_modifier"]
    config: PayloadModifierConfig = Field(default_factory=PayloadModifierConfig)


class ReasoningInterceptor(_Interceptor):
    name: Literal["reasoning"]
    config: ReasoningConfig = Field(default_factory=ReasoningConfig)


class ResponseStatsInterceptor(_Interceptor):
    name: Literal["response_stats"]
    config: ResponseStatsConfig = Field(default_factory=ResponseStatsConfig)


Interceptor = Annotated[
    CachingInterceptor | EndpointInterceptor | RequestLoggingInterceptor | ResponseLoggingInterceptor
    | SystemMessageInterceptor | PayloadModifierInterceptor | ReasoningInterceptor | ResponseStatsInterceptor,
    Field(discriminator="name"),
]


def default_interceptors() -> list[Interceptor]:
    """The chain used when none is configured."""
    return [ResponseStatsInterceptor(name="response_stats"), RequestLoggingInterceptor(name="request_logging"),
            ResponseLoggingInterceptor(name="response_logging"), CachingInterceptor(name="caching"),
            EndpointInterceptor(name="endpoint")]


class AdapterConfig(_Strict):
    """The proxy between the harness and the endpoint."""

    enabled: bool = Field(default=True, description="Run the harness through the adapter proxy.")
    processes: int | None = Field(
        default=None, ge=1, le=64,
        description="Proxy processes sharing its port, each using up to one CPU core (default: 2, or 1 on a "
                    "single-CPU machine). One process relays several thousand requests/s.")
    interceptors: list[Interceptor] = Field(default_factory=default_interceptors,
                                            description="Interceptors, outermost first; endpoint comes last.")

    @model_validator(mode="after")
    def _endpoint_last(self) -> AdapterConfig:
        names = [i.name for i in self.interceptors]
        if len(set(names)) != len(names):
            raise ValueError("each interceptor may appear once")
        if "endpoint" in names and names[-1] != "endpoint":
            raise ValueError("the endpoint interceptor must come last")
        if "endpoint" not in names:
            self.interceptors.append(EndpointInterceptor(name="endpoint"))
        return self

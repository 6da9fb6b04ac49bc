"""Auxiliary endpoints: the OpenAI-compatible endpoints a run asks besides the model (a judge, a user simulator).

Each is named in ``config.params.extra.<role>`` as ``{model, url, api_key, ...}``; the rest of that mapping is the
harness's own. With the adapter on (``target.api_endpoint.adapter_config.enabled``), run_eval puts a proxy of its
own in front of each one that has a ``url``: the chain in ``<role>.adapter_config``, else
:func:`default_auxiliary_adapter`. Its traffic is reported in results.yml under ``usage_by_role.<role>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.schema.adapter import (
    AdapterConfig,
    CachingInterceptor,
    EndpointInterceptor,
    ResponseStatsInterceptor,
)
from orchestrator.schema.config import EndpointUrl
from orchestrator.schema.errors import ConfigError
from orchestrator.schema.loading import validation_error

if TYPE_CHECKING:
    from orchestrator.schema.config import Evaluation

MODEL_ROLE = "model"
"""The endpoint under evaluation (``target.api_endpoint``), as a role among the auxiliary ones."""

AUXILIARY_ROLES: tuple[str, ...] = ("judge", "user_simulator")
"""Keys of ``config.params.extra`` that name an auxiliary endpoint, in the order their proxies start."""


class AuxiliarySettings(BaseModel):
    """What the runtime reads of ``config.params.extra.<role>``; its other keys are the harness's."""

    model_config = ConfigDict(extra="ignore")

    url: EndpointUrl | None = Field(default=None, description="The endpoint's full URL, e.g. its chat-completions "
                                                              "URL. Without one the harness's own default is used, "
                                                              "unproxied.")
    adapter_config: AdapterConfig | None = Field(
        default=None, description="The chain of this endpoint's own proxy (default: response_stats, caching, "
                                  "endpoint, in one process).")


def default_auxiliary_adapter() -> AdapterConfig:
    """An auxiliary endpoint's chain unless it names one: counted, cached, retried; one process, as judges and
    simulators are asked far less often than the model."""
    return AdapterConfig(processes=1, interceptors=[
        ResponseStatsInterceptor(name="response_stats"), CachingInterceptor(name="caching"),
        EndpointInterceptor(name="endpoint")])


@dataclass(frozen=True)
class ProxiedEndpoint:
    """An endpoint run_eval puts a proxy in front of, and that proxy's chain."""

    role: str
    url: str
    adapter_config: AdapterConfig


def auxiliary_settings(extra: dict[str, Any]) -> dict[str, AuxiliarySettings]:
    """The auxiliary endpoints ``config.params.extra`` names, by role; a bad url or adapter_config is bad input.

    A role whose value is not a mapping is the harness's business and is left alone.
    """
    found: dict[str, AuxiliarySettings] = {}
    for role in AUXILIARY_ROLES:
        value = extra.get(role)
        if not isinstance(value, dict):
            continue
        try:
            found[role] = AuxiliarySettings.model_validate(value)
        except ValidationError as err:
            first = validation_error(err, model=AuxiliarySettings, doc=None, source="")
            raise ConfigError(f"config.params.extra.{role}.{first.message}", where="merged config",
                              hint=first.hint) from None
    return found


def proxied_endpoints(evaluation: Evaluation) -> list[ProxiedEndpoint]:
    """The model's endpoint and every auxiliary one with a url, each with its chain; none when the model's adapter
    is off (one switch for every proxy), and not an auxiliary one whose own adapter_config is off."""
    endpoint = evaluation.target.api_endpoint
    if not endpoint.adapter_config.enabled:
        return []
    proxied = [ProxiedEndpoint(MODEL_ROLE, endpoint.url, endpoint.adapter_config)]
    for role, settings in auxiliary_settings(evaluation.config.params.extra).items():
        adapter = settings.adapter_config or default_auxiliary_adapter()
        if settings.url is not None and adapter.enabled:
            proxied.append(ProxiedEndpoint(role, settings.url, adapter))
    return proxied

"""The few Kubernetes API objects evals writes (a ``batch/v1`` Job and what it holds, a ConfigMap), as strict pydantic
models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class _K8s(BaseModel):
    """Kubernetes' camelCase field names; unset fields are left out."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class SecretKeyRef(_K8s):
    name: str
    key: str


class EnvSource(_K8s):
    secret_key_ref: SecretKeyRef


class EnvVar(_K8s):
    name: str
    value: str | None = None
    value_from: EnvSource | None = None


class VolumeMount(_K8s):
    name: str
    mount_path: str
    read_only: bool | None = None
    sub_path: str | None = None


class HostPath(_K8s):
    path: str
    type: str = "Directory"


class ClaimSource(_K8s):
    claim_name: str


class ConfigMapSource(_K8s):
    name: str


class Volume(_K8s):
    name: str
    host_path: HostPath | None = None
    persistent_volume_claim: ClaimSource | None = None
    config_map: ConfigMapSource | None = None


class Resources(_K8s):
    limits: dict[str, str] = Field(default_factory=dict)
    requests: dict[str, str] = Field(default_factory=dict)


class Container(_K8s):
    name: str
    image: str
    image_pull_policy: str
    args: list[str]
    env: list[EnvVar] = Field(default_factory=list)
    volume_mounts: list[VolumeMount] = Field(default_factory=list)
    resources: Resources | None = None


class SecurityContext(_K8s):
    run_as_user: int
    run_as_group: int
    run_as_non_root: bool


class PodSpec(_K8s):
    restart_policy: str = "Never"
    host_network: bool | None = None
    security_context: SecurityContext
    containers: list[Container]
    volumes: list[Volume] = Field(default_factory=list)


class ObjectMeta(_K8s):
    name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class PodTemplate(_K8s):
    metadata: ObjectMeta
    spec: PodSpec


class JobSpec(_K8s):
    backoff_limit: int = 0
    active_deadline_seconds: int | None = None
    template: PodTemplate


class Job(_K8s):
    api_version: str = "batch/v1"
    kind: str = "Job"
    metadata: ObjectMeta
    spec: JobSpec


class ConfigMap(_K8s):
    api_version: str = "v1"
    kind: str = "ConfigMap"
    metadata: ObjectMeta
    data: dict[str, str]

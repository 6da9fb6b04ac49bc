"""Kubernetes Job manifests for a run's tasks (rendered only: evals does not talk to a cluster).

One ``batch/v1`` Job per task, running the same image with the same arguments, user and mounts as
the docker launcher. The API key comes from a Kubernetes Secret by reference
(``valueFrom.secretKeyRef``), never from the manifest. The output directory is a PersistentVolumeClaim
(``results_claim``, sub-path ``<run id>/<harness>-<task>``) or, without one, the host path.
Apply with ``kubectl apply -f``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from orchestrator.schema.container import RESULTS_DIR
from orchestrator.schema.loading import dump_yaml
from orchestrator.schema.record import MountRecord, TaskRecord


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


class Volume(_K8s):
    name: str
    host_path: HostPath | None = None
    persistent_volume_claim: ClaimSource | None = None


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


@dataclass(frozen=True, kw_only=True)
class KubernetesOptions:
    """Cluster-side choices the run record does not hold."""

    namespace: str = "default"
    secret_name: str = "evals-api-keys"
    """The Secret holding the API key, under a key named like the variable (kubectl create secret generic ...)."""
    results_claim: str | None = None
    image_pull_policy: str = "IfNotPresent"
    gpus: int | None = None
    cpu: str | None = None
    memory: str | None = None
    deadline_seconds: int | None = None
    uid: int | None = None
    gid: int | None = None


def _volume(index: int, mount: MountRecord, sub_path: str, options: KubernetesOptions) -> tuple[Volume, VolumeMount]:
    name = f"mount-{index}"
    if mount.target == RESULTS_DIR and options.results_claim:
        return (Volume(name=name, persistent_volume_claim=ClaimSource(claim_name=options.results_claim)),
                VolumeMount(name=name, mount_path=mount.target, sub_path=sub_path))
    kind = "Directory" if mount.target != "/workspace/run_config.yml" else "File"
    return (Volume(name=name, host_path=HostPath(path=mount.source, type=kind)),
            VolumeMount(name=name, mount_path=mount.target, read_only=mount.read_only or None))


def job_for(run_id: str, task: TaskRecord, options: KubernetesOptions) -> Job:
    """The Job that runs one task."""
    container = task.container
    labels = {**container.labels, "evals.run.index": str(task.index)}
    pairs = [_volume(i, m, f"{run_id}/{task.harness}-{task.task}", options) for i, m in enumerate(container.mounts)]
    env = [EnvVar(name=name, value_from=EnvSource(secret_key_ref=SecretKeyRef(name=options.secret_name, key=name)))
           for name in container.secret_envs]
    env += [EnvVar(name=name, value=value) for name, value in container.environment.items()]
    limits = {"nvidia.com/gpu": str(options.gpus)} if options.gpus else {}
    requests = {key: value for key, value in (("cpu", options.cpu), ("memory", options.memory)) if value}
    pod = PodSpec(
        host_network=container.network_host or None,
        security_context=SecurityContext(run_as_user=os.getuid() if options.uid is None else options.uid,
                                         run_as_group=os.getgid() if options.gid is None else options.gid,
                                         run_as_non_root=(os.getuid() if options.uid is None else options.uid) != 0),
        containers=[Container(name="evaluation", image=container.image, image_pull_policy=options.image_pull_policy,
                              args=list(container.args), env=env, volume_mounts=[m for _, m in pairs],
                              resources=Resources(limits=limits, requests=requests) if limits or requests else None)],
        volumes=[v for v, _ in pairs],
    )
    return Job(metadata=ObjectMeta(name=f"evals-{run_id}-{task.index}".lower(), namespace=options.namespace,
                                   labels=labels),
               spec=JobSpec(active_deadline_seconds=options.deadline_seconds,
                            template=PodTemplate(metadata=ObjectMeta(labels=labels), spec=pod)))


def render_jobs(run_id: str, tasks: list[TaskRecord], options: KubernetesOptions) -> str:
    """A multi-document YAML manifest: one Job per task."""
    documents = [dump_yaml(job_for(run_id, task, options).model_dump(mode="json", by_alias=True, exclude_none=True))
                 for task in tasks]
    return "---\n" + "---\n".join(documents)

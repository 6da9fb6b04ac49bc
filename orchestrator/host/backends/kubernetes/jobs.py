"""Kubernetes Job manifests for a run's tasks (rendered only: evals does not talk to a cluster).

One ``batch/v1`` Job per task, running the same image with the same arguments, user, mounts and environment
(the image's name and the host's version and contract fingerprint) as the docker launcher. The run the host
resolved comes from a ConfigMap beside the Job (named like it, ``run_config.yml``: the text ``--dry_run`` shows),
mounted read-only where the container reads it (``run_eval --resolved_config``). The API key comes from a
Kubernetes Secret by reference (``valueFrom.secretKeyRef``), never from the manifest. The output directory is a
PersistentVolumeClaim (``results_claim``, sub-path ``<run id>/<harness>-<task>``) or, without one, the host path.
Without a namespace the Jobs go where ``kubectl apply [-n NS] -f DIR`` puts them. A pod cannot know its image's
content id, so results.yml's provenance names the image without it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from orchestrator.host.backends.kubernetes.manifest import (
    ClaimSource,
    ConfigMap,
    ConfigMapSource,
    Container,
    EnvSource,
    EnvVar,
    HostPath,
    Job,
    JobSpec,
    ObjectMeta,
    PodSpec,
    PodTemplate,
    Resources,
    SecretKeyRef,
    SecurityContext,
    Volume,
    VolumeMount,
)
from orchestrator.schema.container import RESOLVED_CONFIG_PATH, RESULTS_DIR, RUN_CONFIG_PATH
from orchestrator.schema.errors import InputError
from orchestrator.schema.loading import dump_yaml
from orchestrator.schema.record import MountRecord, TaskRecord


@dataclass(frozen=True, kw_only=True)
class KubernetesOptions:
    """Cluster-side choices the run record does not hold."""

    namespace: str | None = None
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


CONFIG_KEY = "run_config.yml"
"""The key of the resolved run in a task's ConfigMap."""


def _name(run_id: str, task: TaskRecord) -> str:
    """The Job's name, and its ConfigMap's."""
    return f"evals-{run_id}-{task.index}".lower()


def _volume(index: int, mount: MountRecord, sub_path: str, options: KubernetesOptions,
            config_map: str | None) -> tuple[Volume, VolumeMount]:
    name = f"mount-{index}"
    if mount.target == RESULTS_DIR and options.results_claim:
        return (Volume(name=name, persistent_volume_claim=ClaimSource(claim_name=options.results_claim)),
                VolumeMount(name=name, mount_path=mount.target, sub_path=sub_path))
    if mount.target == RESOLVED_CONFIG_PATH and config_map is not None:
        return (Volume(name=name, config_map=ConfigMapSource(name=config_map)),
                VolumeMount(name=name, mount_path=mount.target, sub_path=CONFIG_KEY, read_only=True))
    kind = "Directory" if mount.target not in (RUN_CONFIG_PATH, RESOLVED_CONFIG_PATH) else "File"
    return (Volume(name=name, host_path=HostPath(path=mount.source, type=kind)),
            VolumeMount(name=name, mount_path=mount.target, read_only=mount.read_only or None))


def job_for(run_id: str, task: TaskRecord, options: KubernetesOptions) -> Job:
    """The Job that runs one task."""
    container = task.container
    labels = {**container.labels, "evals.run.index": str(task.index)}
    config_map = _name(run_id, task) if task.resolved_config is not None else None
    pairs = [_volume(i, m, f"{run_id}/{task.harness}-{task.task}", options, config_map)
             for i, m in enumerate(container.mounts)]
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
    return Job(metadata=ObjectMeta(name=_name(run_id, task), namespace=options.namespace, labels=labels),
               spec=JobSpec(active_deadline_seconds=options.deadline_seconds,
                            template=PodTemplate(metadata=ObjectMeta(labels=labels), spec=pod)))


def config_map_for(run_id: str, task: TaskRecord, options: KubernetesOptions) -> ConfigMap | None:
    """The ConfigMap holding the task's resolved run (none for a task recorded before the host resolved for it)."""
    if task.resolved_config is None:
        return None
    labels = {**task.container.labels, "evals.run.index": str(task.index)}
    return ConfigMap(metadata=ObjectMeta(name=_name(run_id, task), namespace=options.namespace, labels=labels),
                     data={CONFIG_KEY: task.resolved_config})


def _documents(run_id: str, task: TaskRecord, options: KubernetesOptions) -> str:
    """The task's ConfigMap and Job, as YAML documents."""
    objects = [config_map_for(run_id, task, options), job_for(run_id, task, options)]
    return "---\n".join(dump_yaml(o.model_dump(mode="json", by_alias=True, exclude_none=True))
                         for o in objects if o is not None)


def render_jobs(run_id: str, tasks: list[TaskRecord], options: KubernetesOptions) -> str:
    """A multi-document YAML manifest: per task, its ConfigMap and its Job."""
    return "---\n" + "---\n".join(_documents(run_id, task, options) for task in tasks)


def write_jobs(run_id: str, tasks: list[TaskRecord], options: KubernetesOptions, directory: Path) -> list[Path]:
    """One ``<job name>.yml`` per task (its ConfigMap and Job) in ``directory``, which must be new or empty
    (``kubectl apply -f DIR`` applies every manifest in it, so stale ones would run too)."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise InputError(f"--manifests {directory} exists and is not an empty directory",
                         hint="give a new directory: kubectl apply -f DIR would apply every file in it")
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for task in tasks:
        path = directory / f"{_name(run_id, task)}.yml"
        path.write_text("---\n" + _documents(run_id, task, options), encoding="utf-8")
        written.append(path)
    return written

"""Kubernetes Job manifests (rendered only; no cluster can be had on the project's machines)."""

from __future__ import annotations

from typing import Any

import yaml

from orchestrator.host.backends.kubernetes.jobs import KubernetesOptions, render_jobs
from tests.unit.records import RUN_ID, TRICKY, tasks


def jobs(**options: Any) -> list[dict[str, Any]]:
    text = render_jobs(RUN_ID, tasks(), KubernetesOptions(uid=1000, gid=1000, **options))
    return list(yaml.safe_load_all(text))


def test_one_job_per_task_with_the_same_container_as_locally() -> None:
    first, second = jobs()
    assert (first["apiVersion"], first["kind"]) == ("batch/v1", "Job")
    assert first["metadata"]["name"] == f"evals-{RUN_ID}-0" and second["metadata"]["name"] == f"evals-{RUN_ID}-1"
    labels = first["metadata"]["labels"]
    assert labels["evals.run.id"] == RUN_ID and labels["evals.run.index"] == "0"
    pod = second["spec"]["template"]["spec"]
    assert first["spec"]["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
    assert pod["securityContext"] == {"runAsUser": 1000, "runAsGroup": 1000, "runAsNonRoot": True}
    assert pod["hostNetwork"] is True
    container = pod["containers"][0]
    assert container["image"] == "evals/lm-eval:latest" and container["args"][0] == "run_eval"
    assert container["args"][-1] == TRICKY
    assert container["volumeMounts"][1] == {"name": "mount-1", "mountPath": "/data", "readOnly": True}
    assert pod["volumes"][0]["hostPath"]["path"].endswith("/lm-eval-arc_challenge_sample")


def test_api_key_comes_from_a_secret_by_reference() -> None:
    container = jobs(secret_name="my-keys")[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [{"name": "MY_KEY", "valueFrom": {"secretKeyRef": {"name": "my-keys", "key": "MY_KEY"}}}]


def test_results_on_a_claim_resources_and_deadline() -> None:
    job = jobs(results_claim="shared-results", gpus=1, cpu="2", memory="8Gi", deadline_seconds=3600,
               namespace="evals")[0]
    pod = job["spec"]["template"]["spec"]
    assert job["metadata"]["namespace"] == "evals" and job["spec"]["activeDeadlineSeconds"] == 3600
    assert pod["volumes"][0] == {"name": "mount-0", "persistentVolumeClaim": {"claimName": "shared-results"}}
    assert pod["containers"][0]["volumeMounts"][0]["subPath"] == f"{RUN_ID}/lm-eval-gsm8k_sample"
    assert pod["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": "1"},
                                                 "requests": {"cpu": "2", "memory": "8Gi"}}

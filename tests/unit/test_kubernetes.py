"""Kubernetes Job manifests (rendered only; no cluster can be had on the project's machines), from the renderer
and from `evals run --executor kubernetes --dry_run`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.host.backends.kubernetes.jobs import KubernetesOptions, render_jobs
from orchestrator.host.backends.kubernetes.manifest import ConfigMap, Job, SecretKeyRef
from orchestrator.schema.container import RESOLVED_CONFIG_PATH, RESULTS_DIR
from tests.doubles.services import fake_services
from tests.unit.evals_app import Evals
from tests.unit.records import CONTRACT, RUN_ID, TRICKY, tasks
from tests.unit.test_host_cli import IMAGES
from tests.unit.test_resolve_once import rendered_config_text


def documents(**options: Any) -> list[dict[str, Any]]:
    text = render_jobs(RUN_ID, tasks(), KubernetesOptions(uid=1000, gid=1000, **options))
    return list(yaml.safe_load_all(text))


def jobs(**options: Any) -> list[dict[str, Any]]:
    return [document for document in documents(**options) if document["kind"] == "Job"]


def test_the_resolved_config_comes_from_a_config_map_beside_its_job() -> None:
    config_map, first, second = documents(namespace="evals")
    assert (config_map["apiVersion"], config_map["kind"]) == ("v1", "ConfigMap")
    assert config_map["metadata"]["name"] == first["metadata"]["name"]
    assert config_map["metadata"]["namespace"] == "evals"
    assert config_map["data"] == {"run_config.yml": tasks()[0].resolved_config}
    pod = first["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["run_eval", "--resolved_config", RESOLVED_CONFIG_PATH]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == RESOLVED_CONFIG_PATH)
    assert mount["subPath"] == "run_config.yml" and mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume == {"name": mount["name"], "configMap": {"name": config_map["metadata"]["name"]}}
    environment = {var["name"]: var.get("value") for var in container["env"]}
    assert environment["EVALS_IMAGE"] == "evals/lm-eval:latest" and environment["EVALS_HOST_CONTRACT"] == CONTRACT
    assert second["spec"]["template"]["spec"]["containers"][0]["args"][-1] == TRICKY  # recorded before: as it was


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
    assert container["env"][0] == {"name": "MY_KEY",
                                   "valueFrom": {"secretKeyRef": {"name": "my-keys", "key": "MY_KEY"}}}
    assert all("valueFrom" not in var for var in container["env"][1:])


def test_results_on_a_claim_resources_and_deadline() -> None:
    job = jobs(results_claim="shared-results", gpus=1, cpu="2", memory="8Gi", deadline_seconds=3600,
               namespace="evals")[0]
    pod = job["spec"]["template"]["spec"]
    assert job["metadata"]["namespace"] == "evals" and job["spec"]["activeDeadlineSeconds"] == 3600
    assert pod["volumes"][0] == {"name": "mount-0", "persistentVolumeClaim": {"claimName": "shared-results"}}
    assert pod["containers"][0]["volumeMounts"][0]["subPath"] == f"{RUN_ID}/lm-eval-gsm8k_sample"
    assert pod["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": "1"},
                                                 "requests": {"cpu": "2", "memory": "8Gi"}}


def test_namespace_is_left_to_kubectl_unless_given() -> None:
    assert "namespace" not in jobs()[0]["metadata"]
    assert jobs(namespace="evals")[0]["metadata"]["namespace"] == "evals"


# `evals run --executor kubernetes --dry_run`: planned as a local run, one manifest per task, nothing started.

URL = "http://localhost:8000/v1/completions"
KEY = "sk-secret-value-123"


@pytest.fixture
def evals(monkeypatch: pytest.MonkeyPatch) -> Evals:
    monkeypatch.setenv("MY_KEY", KEY)
    return Evals(fake_services(images=IMAGES,
                               executor_for=lambda kind: pytest.fail("a kubernetes run must start no container")))


def render(evals: Evals, tmp_path: Path, *extra: str, tasks: tuple[str, ...] = ("gsm8k",)) -> tuple[int, str, str]:
    args = ["run", *(arg for task in tasks for arg in ("--eval_type", task)), "--model_id", "m", "--model_url", URL,
            "--model_type", "completions", "--api_key_name", "MY_KEY", "--output_dir", str(tmp_path / "out"),
            "--executor", "kubernetes", *extra]
    return evals(*args)


def manifests(directory: Path) -> list[Job]:
    """The Job of each file (each holds the task's ConfigMap, then its Job)."""
    found = []
    for path in sorted(directory.iterdir()):
        config_map, job = yaml.safe_load_all(path.read_text())
        ConfigMap.model_validate(config_map)
        found.append(Job.model_validate(job))
    return found


def test_dry_run_writes_one_valid_job_manifest_for_one_task(evals: Evals, tmp_path: Path) -> None:
    code, out, err = render(evals, tmp_path, "--dry_run", "--manifests", str(tmp_path / "k8s"))
    assert code == 0, err
    assert "Rendered command:" in out and str(tmp_path / "k8s") in err and "kubectl apply -f" in err
    assert 'kubectl create secret generic evals-api-keys --from-literal=MY_KEY="$MY_KEY"' in err
    (job,) = manifests(tmp_path / "k8s")
    container = job.spec.template.spec.containers[0]
    assert container.image == "evals/lm-eval:latest"
    assert container.args == ["run_eval", "--resolved_config", RESOLVED_CONFIG_PATH]
    config_map = next(yaml.safe_load_all((tmp_path / "k8s" / f"{job.metadata.name}.yml").read_text()))
    shown = rendered_config_text(out)
    assert config_map["data"]["run_config.yml"] == shown  # byte for byte what the dry run shows
    assert yaml.safe_load(shown)["config"]["output_dir"] == RESULTS_DIR
    key = next(var for var in container.env if var.name == "MY_KEY")
    assert key.value is None and key.value_from is not None
    assert key.value_from.secret_key_ref == SecretKeyRef(name="evals-api-keys", key="MY_KEY")
    results = next(v for v in job.spec.template.spec.volumes if v.name == "mount-0")
    assert results.host_path is not None and results.host_path.path == str((tmp_path / "out").resolve())
    assert KEY not in out + err + (tmp_path / "k8s").joinpath(f"{job.metadata.name}.yml").read_text()
    assert not (tmp_path / "out").exists()


def test_dry_run_writes_a_manifest_per_task_by_default_under_results(evals: Evals, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = render(evals, tmp_path, "--dry_run", "--gpus", "1", "--results_claim", "shared",
                          tasks=("gsm8k", "mmlu"))
    assert code == 0, err
    (directory,) = (tmp_path / "results").iterdir()
    assert directory.name.startswith("kubernetes-")
    first, second = manifests(directory)
    assert [j.metadata.labels["evals.run.task"] for j in (first, second)] == ["gsm8k", "mmlu"]
    for job in (first, second):
        pod = job.spec.template.spec
        assert pod.containers[0].resources is not None and pod.containers[0].resources.limits == {"nvidia.com/gpu": "1"}
        assert pod.volumes[0].persistent_volume_claim is not None
        assert pod.volumes[0].persistent_volume_claim.claim_name == "shared"
    assert first.spec.template.spec.containers[0].args == ["run_eval", "--resolved_config", RESOLVED_CONFIG_PATH]


def test_manifests_to_stdout(evals: Evals, tmp_path: Path) -> None:
    code, out, err = render(evals, tmp_path, "--dry_run", "--manifests", "-", tasks=("gsm8k", "mmlu"))
    assert code == 0, err
    found = [Job.model_validate(doc) for doc in yaml.safe_load_all(out) if doc["kind"] == "Job"]
    assert [d.metadata.labels["evals.run.task"] for d in found] == ["gsm8k", "mmlu"]
    config_maps = [ConfigMap.model_validate(doc) for doc in yaml.safe_load_all(out) if doc["kind"] == "ConfigMap"]
    assert [yaml.safe_load(c.data["run_config.yml"])["config"]["type"] for c in config_maps] == ["gsm8k", "mmlu"]


def test_refused_without_dry_run_or_into_a_used_directory(evals: Evals, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    base = ["run", "--eval_type", "gsm8k", "--model_id", "m", "--model_url", URL, "--model_type", "chat",
            "--executor", "kubernetes"]
    assert evals.main(base) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "only renders" in err and "--dry_run" in err
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "old.yml").write_text("kind: Job\n")
    assert evals.main([*base, "--dry_run", "--manifests", str(tmp_path / "used")]) == 2
    assert "not an empty directory" in capsys.readouterr().err
    assert evals.main([*base, "--dry_run", "--partition", "gpu"]) == 2
    assert "Slurm settings were given to a kubernetes run" in capsys.readouterr().err
    assert evals.main(["run", "--eval_type", "gsm8k", "--model_id", "m", "--model_url", URL, "--dry_run",
                     "--manifests", str(tmp_path / "new")]) == 2
    assert "--executor kubernetes" in capsys.readouterr().err

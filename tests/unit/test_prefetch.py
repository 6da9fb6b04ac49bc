"""`evals prefetch` with a fake launcher (test double): directory written whole or not at all, manifest, --verify,
`evals run --offline --data DIR`, the Hub token by name, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from orchestrator.host.backends.container import LaunchSpec, Output
from orchestrator.host.data.prefetch import PrefetchItem, prefetch
from orchestrator.host.data.prefetched import cluster_images, verify
from orchestrator.schema.container import CACHE_DIR, SECRET_STDIN_VAR
from orchestrator.schema.errors import HarnessError, InputError
from tests.doubles.launcher import FakeLauncher
from tests.doubles.services import fake_services
from tests.unit.evals_app import Evals
from tests.unit.test_host_cli import IMAGES, run_args, write_results


def fill_cache(spec: LaunchSpec, output: Output) -> None:
    """Fake fetch_data: writes a blob and a snapshot symlink into the mounted cache, as the Hub cache does."""
    cache = next(m.source for m in spec.mounts if m.target == CACHE_DIR)
    task = spec.args[spec.args.index("--eval_type") + 1]
    blobs = cache / "huggingface" / "hub" / f"datasets--{task}" / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    (blobs / "abc").write_text(f"rows of {task}\n")
    snapshot = blobs.parent / "snapshots" / "0123"
    snapshot.mkdir(parents=True, exist_ok=True)
    (snapshot / "test.parquet").symlink_to("../../blobs/abc")
    output(f"data for {task}: ready\n".encode())


def run_prefetch(tmp_path: Path, *tasks: str, launcher: FakeLauncher) -> Path:
    target = tmp_path / "carry"
    prefetch([PrefetchItem(image=IMAGES[0], eval_type=t) for t in tasks], target, launcher=launcher,
             output=lambda _: None, save=None, id_of=lambda _: "sha256:" + "0" * 64, report=lambda _: None)
    return target


def test_prefetch_writes_cache_and_a_manifest_that_verifies(tmp_path: Path) -> None:
    launcher = FakeLauncher(behaviour=fill_cache)
    target = run_prefetch(tmp_path, "gsm8k", "mmlu", launcher=launcher)
    assert [s.args[:3] for s in launcher.launched] == [["fetch_data", "--eval_type", "gsm8k"],
                                                        ["fetch_data", "--eval_type", "mmlu"]]
    manifest = json.loads((target / "manifest.json").read_text())
    assert [t["task"] for t in manifest["tasks"]] == ["gsm8k", "mmlu"]
    blob = "cache/huggingface/hub/datasets--gsm8k/blobs/abc"
    assert manifest["files"][blob]["size"] == len("rows of gsm8k\n")
    assert manifest["links"]["cache/huggingface/hub/datasets--gsm8k/snapshots/0123/test.parquet"] == "../../blobs/abc"
    assert verify(target).tasks[1].task == "mmlu"
    assert [p.name for p in tmp_path.iterdir()] == ["carry"]  # no partial directory left


def test_verify_refuses_a_changed_file_and_a_broken_link(tmp_path: Path) -> None:
    target = run_prefetch(tmp_path, "gsm8k", launcher=FakeLauncher(behaviour=fill_cache))
    blob = target / "cache/huggingface/hub/datasets--gsm8k/blobs/abc"
    blob.write_text("rows of gsm8X\n")  # same size, other content
    with pytest.raises(InputError, match="sha256 does not match"):
        verify(target)
    blob.write_text("rows of gsm8k\n")
    link = target / "cache/huggingface/hub/datasets--gsm8k/snapshots/0123/test.parquet"
    link.unlink()
    link.write_text("rows of gsm8k\n")  # copied without -a: the link became a file
    with pytest.raises(InputError, match="is not the link"):
        verify(target)


def test_a_failed_fetch_leaves_nothing_and_names_the_reason(tmp_path: Path) -> None:
    def missing(spec: LaunchSpec, output: Output) -> None:
        fill_cache(spec, output)
        output(b"core_evals_lm_eval: error: dataset Idavidrein/gpqa (config gpqa_diamond, revision main) is gated\n")

    with pytest.raises(InputError, match=r"cannot prefetch lm-eval.gpqa_diamond_zeroshot: dataset Idavidrein/gpqa"):
        run_prefetch(tmp_path, "gpqa_diamond_zeroshot", launcher=FakeLauncher(exit_code=2, behaviour=missing))
    assert list(tmp_path.iterdir()) == []


def test_unknown_task_and_existing_directory_are_refused_before_anything_runs(tmp_path: Path) -> None:
    launcher = FakeLauncher(behaviour=fill_cache)
    with pytest.raises(InputError, match=r"unknown task 'gsm8kk'.*did you mean: gsm8k"):
        run_prefetch(tmp_path, "gsm8kk", launcher=launcher)
    (tmp_path / "carry").mkdir()
    (tmp_path / "carry" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="already exists and is not empty"):
        run_prefetch(tmp_path, "gsm8k", launcher=launcher)
    assert launcher.launched == []
    assert (tmp_path / "carry" / "keep.txt").read_text() == "mine"


def test_hub_token_is_forwarded_by_name_and_hf_endpoint_by_value(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value_123")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9999")
    launcher = FakeLauncher(behaviour=fill_cache)
    run_prefetch(tmp_path, "gsm8k", launcher=launcher)
    spec = launcher.launched[0]
    assert spec.secret_envs == ["HF_TOKEN"]
    assert spec.environment == {"HF_ENDPOINT": "http://127.0.0.1:9999"}
    assert spec.network_host  # a Hub on loopback is reached with host networking
    assert "hf_secret_value_123" not in repr(spec)
    assert "hf_secret_value_123" not in (tmp_path / "carry" / "manifest.json").read_text()


def test_run_with_data_mounts_the_prefetched_cache_and_runs_offline(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = run_prefetch(tmp_path, "gsm8k", launcher=FakeLauncher(behaviour=fill_cache))
    launcher = FakeLauncher(behaviour=write_results)
    evals = Evals(fake_services(images=IMAGES, launcher=launcher))
    code, _, err = evals(*run_args(tmp_path / "out", "--data", str(target)))
    assert code == 0, err
    spec = launcher.launched[0]
    handed = yaml.safe_load((tmp_path / "out" / "run_config.yml").read_text())  # the run the container runs
    assert handed["config"]["offline"] is True
    cache = next(m for m in spec.mounts if m.target == CACHE_DIR)
    assert cache.source == (target / "cache").resolve()
    args = [a if a != "gsm8k" else "mmlu" for a in run_args(tmp_path / "out2", "--data", str(target))]
    assert evals.main(args) == 2
    assert "holds no data for lm-eval.mmlu" in capsys.readouterr().err
    assert len(launcher.launched) == 1


def test_run_uses_a_writable_cache_and_refuses_one_it_cannot_write(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    launcher = FakeLauncher(behaviour=write_results)
    evals = Evals(fake_services(images=IMAGES, launcher=launcher))
    code, _, err = evals(*run_args(tmp_path / "out", "--cache_dir", str(tmp_path / "c")))
    assert code == 0, err
    cache = next(m for m in launcher.launched[0].mounts if m.target == CACHE_DIR)
    assert not cache.read_only and cache.source == (tmp_path / "c").resolve()
    assert SECRET_STDIN_VAR not in launcher.launched[0].environment
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert evals.main(run_args(tmp_path / "out3", "--cache_dir", str(blocker / "sub"))) == 2
    assert "is not writable" in capsys.readouterr().err
    assert len(launcher.launched) == 1


def test_verify_cli_reports_and_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = run_prefetch(tmp_path, "gsm8k", launcher=FakeLauncher(behaviour=fill_cache))
    evals = Evals(fake_services(images=IMAGES))
    code, out, err = evals("prefetch", "--verify", str(target))
    assert code == 0, err
    assert "match the manifest" in out
    (target / "manifest.json").write_text("{not json")
    assert evals.main(["prefetch", "--verify", str(target)]) == 2
    assert "manifest.json: not JSON" in capsys.readouterr().err
    assert evals.main(["prefetch", "--verify", str(tmp_path / "nowhere")]) == 2
    assert evals.main(["prefetch", "--eval_type", "gsm8k"]) == 2
    assert "needs --eval_type TASK (repeatable) and --to DIR" in capsys.readouterr().err


TOOL_DOUBLE = """#!/bin/sh
# Test double of enroot / apptainer: records its argv, prints a line, writes the output file it was asked for.
echo "$(basename "$0") $*" >> "$EVALS_TOOL_LOG"
case "$1" in import) out=$3 ;; build) out=$2 ;; *) exit 64 ;; esac
echo "converting $(basename "$0")"
[ -z "$EVALS_TOOL_FAIL" ] || exit "$EVALS_TOOL_FAIL"
printf 'image made by a test double: %s\\n' "$*" > "$out"
"""


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """enroot and apptainer test doubles first on PATH; returns the log of their command lines."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("enroot", "apptainer"):
        (bin_dir / name).write_text(TOOL_DOUBLE)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "tools.log"
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("EVALS_TOOL_LOG", str(log))
    monkeypatch.delenv("EVALS_TOOL_FAIL", raising=False)
    return log


def save_double(image: str, path: Path) -> str:
    """Test double of `docker save`."""
    path.write_text(f"docker archive of {image}")
    return "sha256:" + "1" * 64


def prefetch_images(tmp_path: Path, *formats: str) -> Path:
    target = tmp_path / "carry"
    prefetch([PrefetchItem(image=IMAGES[0], eval_type="gsm8k")], target, launcher=FakeLauncher(behaviour=fill_cache),
             output=lambda _: None, save=save_double, id_of=lambda _: "sha256:" + "0" * 64, report=lambda _: None,
             image_formats=formats)
    return target


def test_images_for_clusters_are_made_by_the_real_tools_commands(tmp_path: Path, tools: Path) -> None:
    target = prefetch_images(tmp_path, "docker-archive", "enroot", "apptainer")
    image = IMAGES[0].image
    stem = image.replace("/", "_").replace(":", "_")
    assert tools.read_text().splitlines() == [
        f"enroot import --output {(tmp_path / f'.carry.partial-{os.getpid()}/images/{stem}.sqsh')} dockerd://{image}",
        f"apptainer build {(tmp_path / f'.carry.partial-{os.getpid()}/images/{stem}.sif')} docker-daemon://{image}",
    ]
    manifest = verify(target)
    assert [(i.format, i.file) for i in manifest.images] == [("docker-archive", f"images/{stem}.tar"),
                                                             ("enroot", f"images/{stem}.sqsh"),
                                                             ("apptainer", f"images/{stem}.sif")]
    assert f"images/{stem}.sqsh" in manifest.files
    sqsh = str(target / f"images/{stem}.sqsh")
    assert cluster_images(target, manifest, "enroot", {"lm-eval": image}) == {"lm-eval": sqsh}
    assert cluster_images(target, manifest, "apptainer", {"lm-eval": image})["lm-eval"].endswith(".sif")
    assert cluster_images(target, manifest, "docker", {"lm-eval": image}) == {}
    assert cluster_images(target, manifest, "enroot", {"vlmevalkit": "evals/vlmevalkit:latest"}) == {}


def test_a_missing_or_failing_tool_leaves_nothing(tmp_path: Path, tools: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(InputError, match="--image_format enroot needs the enroot command on this machine"):
        prefetch_images(tmp_path, "enroot")
    assert not tools.exists()  # refused before any fetch
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setenv("EVALS_TOOL_FAIL", "3")
    with pytest.raises(HarnessError, match="apptainer build failed with exit code 3"):
        prefetch_images(tmp_path, "apptainer")
    assert [p.name for p in tmp_path.iterdir() if "carry" in p.name] == []


def test_prefetch_cli_takes_image_formats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    evals = Evals(fake_services(images=IMAGES))
    assert evals.main(["prefetch", "--eval_type", "gsm8k", "--to", str(tmp_path / "x"), "--image_format", "sif"]) == 2
    assert "Invalid value for '--image_format'" in capsys.readouterr().err

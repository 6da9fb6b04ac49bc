"""The host CLI `evals`, built with test doubles: a fake launcher and images described by labels."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from orchestrator.host.backends.container import LaunchSpec, Output
from orchestrator.host.backends.local.docker import EngineUnavailableError
from orchestrator.host.catalog import HarnessImage, chosen_image, from_labels, harness_images, pick_image
from orchestrator.host.cli.app import main
from orchestrator.host.cli.services import default_services
from orchestrator.schema.container import (
    LABEL_FRAMEWORK,
    LABEL_HARNESS,
    LABEL_HARNESS_VERSION,
    RESOLVED_CONFIG_PATH,
    RESULTS_DIR,
)
from orchestrator.schema.errors import InputError
from orchestrator.schema.results import ResultsFile
from tests.doubles.catalog import FakeCatalog
from tests.doubles.launcher import FakeLauncher
from tests.doubles.services import fake_services
from tests.unit.evals_app import Evals

REPO = Path(__file__).resolve().parents[2]
URL = "http://localhost:8000/v1/completions"


def labels_for(harness: str, version: str) -> dict[str, str]:
    text = (REPO / "images" / harness / "framework.yml").read_bytes()
    return {LABEL_HARNESS: harness, LABEL_HARNESS_VERSION: version, LABEL_FRAMEWORK: base64.b64encode(text).decode()}


IMAGES = [from_labels("evals/lm-eval:latest", labels_for("lm-eval", "0.4.13")),
          from_labels("evals/vlmevalkit:latest", labels_for("vlmevalkit", "26.3"))]
RESULTS = (REPO / "tests" / "fixtures" / "results" / "lm_eval_results.yml")


def write_results(spec: LaunchSpec, output: Output) -> None:
    """Fake container: prints a line and writes a valid results.yml into the mounted output dir."""
    output(b"container says hello\n")
    out = next(m.source for m in spec.mounts if m.target == RESULTS_DIR)
    (out / "results.yml").write_text(RESULTS.read_text())


@pytest.fixture
def fake() -> FakeLauncher:
    return FakeLauncher(behaviour=write_results)


@pytest.fixture
def evals(fake: FakeLauncher) -> Evals:
    return Evals(fake_services(images=IMAGES, launcher=fake))


def run_args(out: Path, *extra: str) -> list[str]:
    return ["run", "--eval_type", "gsm8k", "--model_id", "m", "--model_url", URL, "--model_type", "completions",
            "--output_dir", str(out), *extra]


def test_ls_json_lists_every_task_of_every_image(evals: Evals) -> None:
    code, out, _ = evals("ls", "--json")
    assert code == 0
    entries = json.loads(out)
    names = {(e["harness"], e["task"]) for e in entries}
    assert ("lm-eval", "mmlu") in names and ("vlmevalkit", "ocrbench") in names
    mmlu = next(e for e in entries if e["task"] == "mmlu")
    assert mmlu["endpoint_types"] == ["completions"] and mmlu["description"]


def test_run_launches_container_as_caller_with_mount_labels_and_host_network(evals: Evals, fake: FakeLauncher,
                                                                             tmp_path: Path) -> None:
    code, out, err = evals(*run_args(tmp_path / "out"))
    assert code == 0, err
    spec = fake.launched[0]
    assert spec.image == "evals/lm-eval:latest"
    assert spec.user == f"{os.getuid()}:{os.getgid()}"
    assert spec.network_host
    assert spec.mounts[0].source == (tmp_path / "out").resolve() and spec.mounts[0].target == RESULTS_DIR
    assert spec.labels["evals.run.task"] == "gsm8k" and spec.labels["evals.run.harness"] == "lm-eval"
    assert spec.args == ["run_eval", "--resolved_config", RESOLVED_CONFIG_PATH]
    assert spec.mounts[1].source == (tmp_path / "out" / "run_config.yml").resolve() and spec.mounts[1].read_only
    handed = yaml.safe_load(spec.mounts[1].source.read_text())
    assert handed["config"]["type"] == "gsm8k" and handed["config"]["output_dir"] == RESULTS_DIR
    assert "container says hello" in out
    assert "results.yml" in out


def test_api_key_is_forwarded_by_name_only(evals: Evals, fake: FakeLauncher, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "sk-secret-value-123")
    code, _, err = evals(*run_args(tmp_path / "out", "--api_key_name", "MY_KEY"))
    assert code == 0, err
    spec = fake.launched[0]
    assert spec.secret_envs == ["MY_KEY"]
    assert "sk-secret-value-123" not in repr(spec)


def test_unset_api_key_variable_is_refused_before_launch(evals: Evals, fake: FakeLauncher, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_KEY", raising=False)
    code = evals.main(run_args(tmp_path / "out", "--api_key_name", "NOT_SET_KEY"))
    assert code == 2
    assert fake.launched == []


def test_bad_config_fails_on_host_before_any_container(evals: Evals, fake: FakeLauncher, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code = evals.main(run_args(tmp_path / "out", "--overrides", "config.params.limit_samples=-1"))
    assert code == 2
    assert "config.params.limit_samples" in capsys.readouterr().err
    assert fake.launched == [] and not (tmp_path / "out").exists()


def test_dry_run_shows_config_command_and_container(evals: Evals, fake: FakeLauncher, tmp_path: Path) -> None:
    code, out, _ = evals(*run_args(tmp_path / "out", "--dry_run"))
    assert code == 0
    assert "Rendered config:" in out and "Rendered command:" in out and "Container:" in out
    assert "--output_path /workspace/results" in out
    assert fake.launched == [] and not (tmp_path / "out").exists()


def test_container_failure_returns_its_code(evals: Evals, fake: FakeLauncher, tmp_path: Path) -> None:
    fake.exit_code = 4
    fake.behaviour = None
    assert evals.main(run_args(tmp_path / "out")) == 4


def test_usage_error_is_one_line_exit_2(evals: Evals, capsys: pytest.CaptureFixture[str]) -> None:
    assert evals.main(["run", "--no-such-option"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no-such-option" in err


def test_task_offered_by_no_image(evals: Evals, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = run_args(tmp_path / "out")
    args[args.index("gsm8k")] = "gsm8"
    assert evals.main(args) == 2
    assert "gsm8k" in capsys.readouterr().err


def test_image_picked_by_harness_prefix() -> None:
    assert pick_image(IMAGES, "vlmevalkit.ocrbench").harness == "vlmevalkit"
    assert pick_image(IMAGES, "ocrbench").harness == "vlmevalkit"
    assert pick_image(IMAGES, "lm-eval.anything").harness == "lm-eval"


def test_results_fixture_is_valid() -> None:
    ResultsFile.model_validate(yaml.safe_load(RESULTS.read_text()))


def test_the_default_image_of_a_harness_wins_over_other_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    def found(*images: HarnessImage) -> list[tuple[str, dict[str, str]]]:
        return [(image.image, labels_for(image.harness, "1")) for image in images]

    mine = replace(IMAGES[0], image="me/evals/lm-eval:latest")
    other = replace(IMAGES[0], image="someone/evals/lm-eval:latest")
    assert harness_images(found(other, IMAGES[1], IMAGES[0], mine)) == [IMAGES[0], IMAGES[1]]
    assert harness_images(found(other, mine)) == [other]  # none is the default: the newest
    monkeypatch.setenv("EVALS_REGISTRY", "me")
    assert harness_images(found(other, IMAGES[0], mine, IMAGES[1])) == [mine, IMAGES[1]]


def test_harness_option_is_a_harness_some_built_image_is_labelled_with(monkeypatch: pytest.MonkeyPatch) -> None:
    """No list of harnesses: --harness H is the image labelled H (its default name first); any other H is unknown,
    and the error lists the built ones."""
    mine = replace(IMAGES[0], image="me/evals/lm-eval:latest")
    assert chosen_image(FakeCatalog([IMAGES[1], mine]), harness="lm-eval", image=None) == mine
    monkeypatch.setenv("EVALS_REGISTRY", "me")
    assert chosen_image(FakeCatalog(harness_images([(i.image, labels_for(i.harness, "1")) for i in
                                                    (IMAGES[0], mine)])), harness="lm-eval", image=None).image == \
        "me/evals/lm-eval:latest"
    monkeypatch.delenv("EVALS_REGISTRY")
    with pytest.raises(InputError) as info:
        chosen_image(FakeCatalog(IMAGES), harness="lm-evl", image=None)
    message = str(info.value)
    assert "unknown harness 'lm-evl'" in message and "did you mean 'lm-eval'?" in message
    assert "built: lm-eval, vlmevalkit" in message and "bash scripts/build-image.sh lm-evl" in message
    with pytest.raises(InputError, match="built: none"):
        chosen_image(FakeCatalog([]), harness="simple-evals", image=None)


def test_images_are_harness_images() -> None:
    assert all(isinstance(image, HarnessImage) for image in IMAGES)


def test_show_prints_scores_of_results_files(evals: Evals, tmp_path: Path) -> None:
    code, out, err = evals("show", str(RESULTS))
    assert code == 0, err
    assert "exact_match__strict-match" in out and "0.7000" in out


def test_show_rejects_an_invalid_results_file(evals: Evals, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "results.yml"
    bad.write_text("results: {}\n")
    assert evals.main(["show", str(tmp_path)]) == 2  # a file the user names is input
    assert "invalid results file" in capsys.readouterr().err


def test_the_real_services_connect_to_no_engine_until_a_command_uses_them(monkeypatch: pytest.MonkeyPatch,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")  # nothing listens there: a connection would fail
    services = default_services()
    assert main(["--help"]) == 0 and main(["run", "--help"]) == 0 and "--eval_type" in capsys.readouterr().out
    with pytest.raises(EngineUnavailableError):
        services.catalog.images()


def test_the_catalog_keeps_the_first_image_of_each_harness_in_harness_order() -> None:
    found = [("evals/vlmevalkit:latest", labels_for("vlmevalkit", "26.3")),
             ("evals/lm-eval:latest", labels_for("lm-eval", "0.4.13")),
             ("evals/lm-eval:0.1.0", labels_for("lm-eval", "0.4.12"))]
    assert [image.image for image in harness_images(found)] == ["evals/lm-eval:latest", "evals/vlmevalkit:latest"]

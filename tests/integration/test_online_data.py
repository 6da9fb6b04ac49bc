"""Online by default, offline on purpose, against a local Hugging Face Hub on loopback (tests/hub).

The real lm-eval image fetches gsm8k, MMLU, HumanEval (and the code_eval metric) and a gated GPQA from the
stand-in Hub through HF_ENDPOINT, exactly as it would from huggingface.co; `evals prefetch` carries them into
a directory; with the Hub stopped, `evals run --offline --data DIR` scores the same.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import yaml

from orchestrator.host.backends.local.docker import DockerLauncher, image_id, image_labels
from orchestrator.host.catalog import from_labels
from orchestrator.host.data.prefetch import PrefetchItem, prefetch
from orchestrator.schema.errors import InputError
from tests.endpoint.server import EndpointServer
from tests.hub.repos import build
from tests.hub.server import HubServer, serve
from tests.integration.expected import gsm8k_flexible, mmlu_acc
from tests.integration.test_evals_cli import evals

TOKEN = "hf_test_gated_token_4242"
QUIET = {"HF_UPDATE_DOWNLOAD_COUNTS": "0"}
"""datasets and evaluate report download counts to s3.amazonaws.com unless told not to: these machines reach only
loopback (the variable is forwarded to the container like HF_ENDPOINT)."""
GATED = "Idavidrein/gpqa"


@pytest.fixture(scope="module")
def hub_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hub")
    build(root)
    return root


@pytest.fixture
def hub(hub_root: Path) -> Iterator[HubServer]:
    with serve(hub_root, gated={GATED}, token=TOKEN) as server:
        yield server


def scores(results: Path) -> dict[str, float]:
    """metric -> value (its first score) of the first task in a results.yml."""
    data = yaml.safe_load(results.read_text())
    task = next(iter(data["results"]["tasks"].values()))
    return {metric: next(iter(entry["scores"].values()))["value"] for metric, entry in task["metrics"].items()}


def gsm8k_run(endpoint: EndpointServer, out: Path, *extra: str, env: dict[str, str]) -> dict[str, float]:
    result = evals("run", "--eval_type", "gsm8k", "--model_id", endpoint.model, "--model_type", "chat",
                   "--model_url", f"{endpoint.url}/v1/chat/completions", "--output_dir", str(out),
                   "--overrides", "config.params.limit_samples=5", *extra, env=env)
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    return scores(out / "results.yml")


def test_online_run_fetches_from_the_hub_then_prefetch_carries_it_offline(
        lm_eval_image: str, hub: HubServer, endpoint: EndpointServer, tmp_path: Path) -> None:
    env = {"HF_ENDPOINT": hub.url, "EVALS_CACHE_DIR": str(tmp_path / "cache"), "HF_TOKEN": "", **QUIET}
    online = gsm8k_run(endpoint, tmp_path / "online", env=env)
    expected = gsm8k_flexible(5)
    assert online["exact_match__flexible-extract"] == pytest.approx(expected)
    assert online["exact_match__strict-match"] == 0.0
    fetched = [r.path for r in hub.requests if r.status == 200]
    assert any("openai/gsm8k" in path for path in fetched), fetched
    assert (tmp_path / "cache" / "huggingface").is_dir()  # the host cache, filled through the mount
    assert len([r for r in endpoint.requests if r.kind == "inference"]) == 5

    carry = tmp_path / "carry"
    result = evals("prefetch", "--eval_type", "gsm8k", "--eval_type", "lm-eval.mmlu_anatomy",
                   "--eval_type", "lm-eval.humaneval", "--to", str(carry), env=env)
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    assert any("spaces/evaluate-metric/code_eval" in r.path for r in hub.requests)  # the metric module, too
    hub.shutdown()  # from here on there is no Hub at all

    verified = evals("prefetch", "--verify", str(carry))
    assert verified.returncode == 0, verified.stderr
    assert "match the manifest" in verified.stdout
    offline_env = {**env, "EVALS_CACHE_DIR": str(tmp_path / "unused-cache")}
    before = len(endpoint.requests)
    offline = gsm8k_run(endpoint, tmp_path / "offline", "--offline", "--data", str(carry), env=offline_env)
    assert offline == online
    run_config = yaml.safe_load((tmp_path / "offline" / "run_config.yml").read_text())
    assert run_config["config"]["offline"] is True
    assert len(endpoint.requests) - before == 5
    assert evals("prefetch", "--verify", str(carry)).returncode == 0  # the run left the data as it was

    mmlu = evals("run", "--eval_type", "lm-eval.mmlu_anatomy", "--model_id", endpoint.model,
                 "--model_type", "completions", "--model_url", f"{endpoint.url}/v1/completions",
                 "--output_dir", str(tmp_path / "mmlu"), "--offline", "--data", str(carry), "--overrides",
                 "config.params.limit_samples=5,config.params.extra.tokenizer_backend=remote,"
                 "config.params.extra.tokenized_requests=true", env=offline_env)
    assert mmlu.returncode == 0, mmlu.stderr[-3000:] + mmlu.stdout[-3000:]
    assert scores(tmp_path / "mmlu" / "results.yml")["acc"] == pytest.approx(mmlu_acc(5))

    missing = evals("run", "--eval_type", "ifeval", "--model_id", endpoint.model, "--model_type", "chat",
                    "--model_url", f"{endpoint.url}/v1/chat/completions", "--output_dir", str(tmp_path / "no"),
                    "--offline", "--data", str(carry), env=offline_env)
    assert missing.returncode == 2
    assert "holds no data for lm-eval.ifeval" in missing.stderr


def test_offline_without_data_fails_before_any_request_with_one_line(
        lm_eval_image: str, endpoint: EndpointServer, tmp_path: Path) -> None:
    result = evals("run", "--eval_type", "gsm8k", "--model_id", endpoint.model, "--model_type", "chat",
                   "--model_url", f"{endpoint.url}/v1/chat/completions", "--output_dir", str(tmp_path / "out"),
                   "--offline", env={"EVALS_CACHE_DIR": str(tmp_path / "empty-cache"), "HF_TOKEN": ""})
    assert result.returncode == 2, result.stderr[-2000:]
    assert "dataset openai/gsm8k (config main, revision main) is not in the cache and this run is offline" \
        in result.stderr + result.stdout
    assert "evals prefetch --eval_type gsm8k --to DIR" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    assert [r for r in endpoint.requests if r.kind == "inference"] == []


def test_gated_dataset_needs_the_token_which_stays_out_of_files_and_inspect(
        lm_eval_image: str, hub: HubServer, engine: docker.DockerClient, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_UPDATE_DOWNLOAD_COUNTS", "0")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    image = from_labels(lm_eval_image, image_labels(engine, lm_eval_image))
    item = PrefetchItem(image=image, eval_type="gpqa_diamond_zeroshot")
    launcher = DockerLauncher(engine)
    output: list[bytes] = []
    with pytest.raises(InputError, match=r"Idavidrein/gpqa .*is gated"):
        prefetch([item], tmp_path / "refused", launcher=launcher, output=output.append, save=None,
                 id_of=lambda name: image_id(engine, name), report=lambda _: None)
    assert not (tmp_path / "refused").exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".refused")] == []

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    inspected: list[str] = []

    def watch(chunk: bytes) -> None:
        output.append(chunk)
        if not inspected:
            inspected.extend(json.dumps(c.attrs) for c in engine.containers.list(filters={"label": "evals.prefetch"}))

    prefetch([item], tmp_path / "gated", launcher=launcher, output=watch, save=None,
             id_of=lambda name: image_id(engine, name), report=lambda _: None)
    assert any(r.authorized and GATED in r.path and r.status == 200 for r in hub.requests)
    assert inspected and "HF_TOKEN" in inspected[0] and TOKEN not in inspected[0]
    assert TOKEN.encode() not in b"".join(output)
    for path in (tmp_path / "gated").rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert TOKEN.encode() not in path.read_bytes(), path
    assert os.environ["HF_TOKEN"] == TOKEN


def test_a_hugging_face_tokenizer_is_fetched_and_carried_like_the_data(
        lm_eval_image: str, hub: HubServer, endpoint: EndpointServer, tmp_path: Path) -> None:
    """tokenizer_backend: huggingface makes lm-eval load a tokenizer from the Hub: the data step fetches it first
    (or refuses with one line), prefetch carries it, and the offline run loads it from the cache."""
    env = {"HF_ENDPOINT": hub.url, "EVALS_CACHE_DIR": str(tmp_path / "cache"), "HF_TOKEN": "", **QUIET}
    tokenizer = "config.params.extra.tokenizer_backend=huggingface,config.params.extra.tokenizer="

    def gsm8k(out: Path, name: str, *extra: str, run_env: dict[str, str]) -> tuple[int, str]:
        result = evals("run", "--eval_type", "gsm8k", "--model_id", endpoint.model, "--model_type", "chat",
                       "--model_url", f"{endpoint.url}/v1/chat/completions", "--output_dir", str(out),
                       "--overrides", f"config.params.limit_samples=3,{tokenizer}{name}", *extra, env=run_env)
        return result.returncode, result.stdout + result.stderr

    code, output = gsm8k(tmp_path / "online", "evals-test/word-tokenizer", run_env=env)
    assert code == 0, output[-3000:]
    assert any(r.path.startswith("/evals-test/word-tokenizer/resolve/") and r.path.endswith("/tokenizer.json")
               and r.status == 200 for r in hub.requests), [r.path for r in hub.requests]
    assert scores(tmp_path / "online" / "results.yml")["exact_match__flexible-extract"] == \
        pytest.approx(gsm8k_flexible(3))

    asked = len([r for r in endpoint.requests if r.kind == "inference"])
    code, output = gsm8k(tmp_path / "missing", "evals-test/no-such-tokenizer", run_env=env)
    assert code == 2, output[-3000:]
    assert "tokenizer evals-test/no-such-tokenizer (revision main)" in output
    assert "Traceback" not in output
    assert len([r for r in endpoint.requests if r.kind == "inference"]) == asked  # refused before any request

    carry = tmp_path / "carry"
    result = evals("prefetch", "--eval_type", "gsm8k", "--to", str(carry), "--overrides",
                   f"{tokenizer}evals-test/word-tokenizer", env={**env, "EVALS_CACHE_DIR": str(tmp_path / "c2")})
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    assert any("models--evals-test--word-tokenizer" in name and name.endswith("/tokenizer.json")
               for name in json.loads((carry / "manifest.json").read_text())["links"])  # Hub cache: snapshot links
    hub.shutdown()
    code, output = gsm8k(tmp_path / "offline", "evals-test/word-tokenizer", "--offline", "--data", str(carry),
                         run_env={**env, "EVALS_CACHE_DIR": str(tmp_path / "unused")})
    assert code == 0, output[-3000:]
    assert scores(tmp_path / "offline" / "results.yml") == scores(tmp_path / "online" / "results.yml")

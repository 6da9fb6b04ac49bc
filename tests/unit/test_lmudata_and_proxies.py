"""VLMEvalKit's data step (images/vlmevalkit/evals_vlmeval/lmudata.py, imported without vlmeval) and how proxy,
mirror and Hub variables travel from the host into the container and the harness."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from orchestrator.host.data.cache import data_access
from orchestrator.runtime.data import harness_env
from orchestrator.runtime.run import _secrets
from tests.hub.files import serve

REPO = Path(__file__).resolve().parents[2]
URL = "https://opencompass.openxlab.space/utils/VLMEval/OCRBench.tsv"


@pytest.fixture
def lmudata(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("lmudata_under_test",
                                                  REPO / "images/vlmevalkit/evals_vlmeval/lmudata.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in ("EVALS_LMUDATA_MIRROR", "HF_ENDPOINT", "EVALS_OFFLINE", "HF_HUB_OFFLINE", "HTTP_PROXY",
                 "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LMUData", str(tmp_path / "cache"))
    monkeypatch.setenv("EVALS_LMUDATA_STAGED", str(tmp_path / "staged"))
    return module


def places(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "staged", tmp_path / "cache"


def test_mirror_keeps_the_path_and_hf_endpoint_serves_hub_urls(lmudata: ModuleType,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    assert lmudata.source_url(URL) == URL
    hub_url = "https://huggingface.co/datasets/x/y/resolve/main/A.tsv?download=1"
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:1234/")
    assert lmudata.source_url(hub_url) == "http://127.0.0.1:1234/datasets/x/y/resolve/main/A.tsv?download=1"
    assert lmudata.source_url(URL) == URL  # HF_ENDPOINT is for Hugging Face URLs only
    monkeypatch.setenv("EVALS_LMUDATA_MIRROR", "https://artifacts.corp/vlmeval")
    assert lmudata.source_url(URL) == "https://artifacts.corp/vlmeval/utils/VLMEval/OCRBench.tsv"


def test_staged_wins_then_the_cache_and_offline_never_downloads(lmudata: ModuleType, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    staged, cache = places(tmp_path)
    monkeypatch.setenv("EVALS_OFFLINE", "1")
    with pytest.raises(lmudata.MissingDataError) as caught:
        lmudata.ensure("OCRBench", URL, None, places=(staged, cache), eval_type="ocrbench")
    assert caught.value.message == (f"VLMEvalKit dataset OCRBench (OCRBench.tsv) is neither in the cache {cache} "
                                    f"nor pre-staged in {staged}, and this run is offline")
    assert "evals prefetch --eval_type ocrbench --to DIR" in caught.value.hint
    cache.mkdir()
    (cache / "OCRBench.tsv").write_text("cached")
    assert lmudata.ensure("OCRBench", URL, None, places=(staged, cache), eval_type=None) == cache / "OCRBench.tsv"
    staged.mkdir()
    (staged / "OCRBench.tsv").write_text("staged")
    assert lmudata.ensure("OCRBench", URL, None, places=(staged, cache), eval_type=None) == staged / "OCRBench.tsv"
    assert "pre-staged" in capsys.readouterr().err


def test_online_download_is_atomic_checked_and_names_the_url(lmudata: ModuleType, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("requests")
    root = tmp_path / "served"
    (root / "utils/VLMEval").mkdir(parents=True)
    (root / "utils/VLMEval/OCRBench.tsv").write_bytes(b"index\tquestion\n1\tq\n")
    staged, cache = places(tmp_path)
    with serve(root) as mirror:
        monkeypatch.setenv("EVALS_LMUDATA_MIRROR", mirror.url)
        got = lmudata.ensure("OCRBench", URL, "0" * 32, places=(staged, cache), eval_type="ocrbench")
        assert got.read_bytes() == b"index\tquestion\n1\tq\n"
        assert "md5 " + hashlib.md5(got.read_bytes()).hexdigest() in capsys.readouterr().err  # not upstream's
        with pytest.raises(lmudata.MissingDataError) as caught:
            lmudata.ensure("ChartQA_TEST", URL.replace("OCRBench", "ChartQA_TEST"), None, places=(staged, cache),
                           eval_type="chartqa")
        assert caught.value.message == (f"ChartQA_TEST.tsv cannot be fetched from {mirror.url}/utils/VLMEval/"
                                        "ChartQA_TEST.tsv: HTTP 404 Not Found")
        assert "EVALS_LMUDATA_MIRROR" in caught.value.hint
    assert sorted(p.name for p in cache.iterdir()) == ["OCRBench.tsv"]  # no partial file left


def test_the_data_step_prints_the_runtime_marker_line(lmudata: ModuleType, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "vlmeval", ModuleType("vlmeval"))
    fake = ModuleType("vlmeval.dataset")  # a test double of VLMEvalKit's dataset module

    class OCRBench:
        DATASET_URL = {"OCRBench": URL}  # noqa: RUF012 (VLMEvalKit's own shape)
        DATASET_MD5 = {"OCRBench": "e953d98a987cc6e26ef717b61260b778"}  # noqa: RUF012

    fake.OCRBench = OCRBench  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vlmeval.dataset", fake)
    monkeypatch.setenv("EVALS_OFFLINE", "1")
    assert lmudata.main(["--dataset", "OCRBench", "--class", "OCRBench", "--eval_type", "ocrbench"]) == 2
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("evals-data-error: VLMEvalKit dataset OCRBench (OCRBench.tsv) is neither in the cache")
    assert " | hint: on a connected machine run `evals prefetch --eval_type ocrbench --to DIR`" in last
    assert lmudata.main(["--dataset", "OCRBench", "--class", "NoSuchClass"]) == 2
    assert "VLMEvalKit has no dataset class NoSuchClass" in capsys.readouterr().out
    assert lmudata.main(["--dataset", "Nope", "--class", "OCRBench"]) == 2
    assert "VLMEvalKit's OCRBench has no dataset Nope" in capsys.readouterr().out


def test_proxies_travel_by_name_and_loopback_bypasses_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://user:s3cret-pw@proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", ".corp")
    monkeypatch.setenv("EVALS_LMUDATA_MIRROR", "https://artifacts.corp/vlmeval/")
    access = data_access(cache_dir=tmp_path, prefetched_cache=None, offline=False)
    assert access.secret_envs == ["HTTPS_PROXY"]
    assert access.environment == {"EVALS_LMUDATA_MIRROR": "https://artifacts.corp/vlmeval/", "NO_PROXY": ".corp"}
    assert not access.loopback
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    assert data_access(cache_dir=tmp_path, prefetched_cache=None, offline=False).loopback  # host networking

    env = harness_env({"HTTPS_PROXY": "http://proxy.corp:3128", "NO_PROXY": ".corp"}, offline=False)
    assert env["NO_PROXY"] == ".corp,localhost,127.0.0.1,::1"
    assert env["no_proxy"] == "localhost,127.0.0.1,::1"
    assert "NO_PROXY" not in harness_env({"A": "1"}, offline=False)


def test_a_proxy_password_is_masked_but_not_the_whole_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://user:s3cret-pw@proxy.corp:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    assert _secrets(["sk-key-123"]) == ["sk-key-123", "s3cret-pw"]

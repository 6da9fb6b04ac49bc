"""The runtime's data step: run before the harness, offline switches, one-line reasons, and the lm-eval
image's classification of loading failures (imported from images/lm-eval/fetch_data.py without lm-eval)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from orchestrator.runtime.data import OFFLINE_ENV, harness_env, run_data_step
from orchestrator.schema.errors import DataError, HarnessError

REPO = Path(__file__).resolve().parents[2]


def fetch_data_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lm_eval_fetch_data", REPO / "images/lm-eval/fetch_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_offline_sets_the_hub_switches_and_online_leaves_the_environment_alone() -> None:
    assert harness_env({"A": "1"}, offline=False) == {"A": "1"}
    env = harness_env({"A": "1"}, offline=True)
    assert env == {"A": "1", **OFFLINE_ENV}
    assert env["HF_DATASETS_OFFLINE"] == env["HF_HUB_OFFLINE"] == "1"


def test_missing_data_is_one_line_with_its_hint_and_a_crash_is_a_harness_error(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "data.log"
    command = ("echo loading; echo 'evals-data-error: dataset x/y (revision main) is gated | hint: export HF_TOKEN';"
               " exit 2")
    with pytest.raises(DataError) as caught:
        run_data_step(command, log_path=log, env={"PATH": "/usr/bin:/bin"}, secrets=[])
    assert caught.value.message == "dataset x/y (revision main) is gated"
    assert caught.value.hint == "export HF_TOKEN"
    assert caught.value.exit_code == 2
    with pytest.raises(HarnessError, match="exit code 1"):
        run_data_step("echo Traceback; exit 1", log_path=log, env={"PATH": "/usr/bin:/bin"}, secrets=[])
    run_data_step("true", log_path=log, env={"PATH": "/usr/bin:/bin"}, secrets=[])


def test_the_hub_token_is_masked_in_the_data_log(tmp_path: Path) -> None:
    log = tmp_path / "data.log"
    run_data_step("echo token=hf_abcdef123456", log_path=log, env={"PATH": "/usr/bin:/bin"},
                  secrets=["hf_abcdef123456"])
    assert "hf_abcdef123456" not in log.read_text()


class GatedRepoError(Exception):
    """Named like huggingface_hub's: classification goes by class name, without importing the library."""


class DatasetNotFoundError(Exception):
    """Named like datasets'."""


def test_fetch_data_names_the_dataset_the_reason_and_the_fetch_command(monkeypatch: pytest.MonkeyPatch) -> None:
    module = fetch_data_module()
    what = module.describe({"path": "openai/gsm8k", "name": "main"})
    assert what == "dataset openai/gsm8k (config main, revision main)"
    assert module.describe({"path": "json", "data_files": {"test": "/d/x.jsonl"}}).startswith("local json files")
    fetch = "evals prefetch --eval_type gsm8k --to DIR"
    monkeypatch.delenv("HF_TOKEN", raising=False)
    message, hint = module.classify(GatedRepoError("401"), what, offline=False, fetch=fetch)
    assert "is gated" in message and "no HF_TOKEN" in message and "HF_TOKEN" in hint
    message, hint = module.classify(ConnectionError("Couldn't reach 'openai/gsm8k' on the Hub (OfflineModeIsEnabled)"),
                                    what, offline=True, fetch=fetch)
    assert message.endswith("is not in the cache and this run is offline")
    assert fetch in hint
    message, _ = module.classify(DatasetNotFoundError("Dataset 'openai/gsm8k' doesn't exist on the Hub"), what,
                                 offline=False, fetch=fetch)
    assert "cannot be found" in message
    message, hint = module.classify(ConnectionError("timed out"), what, offline=False, fetch=fetch)
    assert "cannot be fetched" in message and fetch in hint

"""The data step: before any request reaches the model, the task's data is fetched (online) or found in the
cache and pre-staged data (offline).

A framework's ``data_command`` does it with the harness's own libraries, so data lands where the harness
looks for it (the Hugging Face cache under ``/cache``, NLTK data, ...). Its contract: exit code 0 when
everything is there; exit code 2 when something cannot be had, with a last line
``evals-data-error: MESSAGE | hint: HINT`` naming the dataset, its revision and the command that fetches it.
Anything else is a harness failure (its output is in logs/data.log).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from orchestrator.runtime.execute import run_streaming
from orchestrator.schema.container import CACHE_DIR, LOOPBACK_HOSTS, PROXY_VARS
from orchestrator.schema.errors import DataError, HarnessError, InputError

ERROR_MARK = "evals-data-error: "
HINT_MARK = " | hint: "
DATA_MISSING_EXIT = 2

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_EVALUATE_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_UPDATE_DOWNLOAD_COUNTS": "0",
    "EVALS_OFFLINE": "1",
}
"""What --offline sets for the harness: the Hugging Face libraries' own offline switches, and ours."""


def harness_env(base: Mapping[str, str], *, offline: bool) -> dict[str, str]:
    """The harness's environment: offline, with the Hugging Face libraries' offline switches set; online,
    as given (images set none of them, so harnesses fetch what they need). With a proxy set, loopback is added
    to NO_PROXY: the harness reaches the adapter proxy on 127.0.0.1 directly."""
    env = dict(base)
    if offline:
        env.update(OFFLINE_ENV)
    if any(env.get(name) for name in PROXY_VARS):
        for name in ("NO_PROXY", "no_proxy"):
            hosts = [h.strip() for h in env.get(name, "").split(",") if h.strip()]
            env[name] = ",".join([*hosts, *(h for h in LOOPBACK_HOSTS if h not in hosts)])
    return env


def check_cache(env: Mapping[str, str], *, offline: bool) -> None:
    """Online, the cache must be writable (downloads go there); a read-only prefetched cache is fine offline."""
    cache = Path(env.get("EVALS_CACHE_DIR", CACHE_DIR))
    if offline or not cache.is_dir():
        return
    if not os.access(cache, os.W_OK | os.X_OK):
        raise InputError(f"the data cache {cache} is not writable (mounted read-only, or owned by another user)",
                         hint="pass a --cache_dir you can write to, or run with --offline on a prefetched cache")


def run_data_step(command: str, *, log_path: Path, env: Mapping[str, str], secrets: list[str]) -> None:
    """Run the data command; a missing dataset raises DataError with the command's own one-line reason."""
    print("data: fetching or checking the task's data before any request to the model", flush=True)
    code = run_streaming(command, log_path=log_path, env=env, secrets=secrets)
    if code == 0:
        return
    if code == DATA_MISSING_EXIT:
        message, hint = _reason(log_path)
        raise DataError(message, hint=hint)
    raise HarnessError(f"the data step failed with exit code {code}", exit_code=code, hint=f"see {log_path}")


def _reason(log_path: Path) -> tuple[str, str | None]:
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    for line in reversed(lines):
        if line.startswith(ERROR_MARK):
            message, _, hint = line[len(ERROR_MARK):].partition(HINT_MARK)
            return message.strip(), hint.strip() or None
    return "the task's data cannot be had", f"see {log_path}"

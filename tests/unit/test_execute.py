"""Running the rendered command: live output, the log file, exit codes, secret masking."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from orchestrator.runtime.execute import Redactor, run_streaming


def run(command: str, tmp_path: Path, secrets: list[str] | None = None) -> tuple[int, bytes, bytes]:
    console = io.BytesIO()
    log = tmp_path / "logs" / "harness.log"
    code = run_streaming(command, log_path=log, env=os.environ, secrets=secrets or [], console=console)
    return code, console.getvalue(), log.read_bytes()


def test_output_goes_to_console_and_log(tmp_path: Path) -> None:
    code, console, log = run("echo out; echo err >&2", tmp_path)
    assert code == 0
    assert console == log == b"out\nerr\n"


def test_exit_code_is_the_commands(tmp_path: Path) -> None:
    assert run("exit 7", tmp_path)[0] == 7


def test_killed_by_signal_maps_to_128_plus_signal(tmp_path: Path) -> None:
    assert run("kill -TERM $$", tmp_path)[0] == 128 + 15


def test_log_is_appended_not_truncated(tmp_path: Path) -> None:
    run("echo first", tmp_path)
    assert run("echo second", tmp_path)[2] == b"first\nsecond\n"


def test_secret_is_masked_in_console_and_log(tmp_path: Path) -> None:
    code, console, log = run("echo key=sk-abcdef123; printf 'sk-abc'; printf 'def123\\n'", tmp_path, ["sk-abcdef123"])
    assert code == 0
    assert console == log == b"key=***\n***\n"


@pytest.mark.parametrize("split", range(1, 12))
def test_redactor_masks_across_chunk_boundaries(split: int) -> None:
    data = b"xx secret-key yy secret-key"
    redactor = Redactor(["secret-key"])
    out = redactor.feed(data[:split]) + redactor.feed(data[split:]) + redactor.flush()
    assert out == b"xx *** yy ***"


def test_redactor_without_secrets_passes_through() -> None:
    assert Redactor([]).feed(b"abc") == b"abc"

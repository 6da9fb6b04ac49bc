"""`evals logs --follow`: a growing file is printed until its task ends, nothing lost at the end."""

from __future__ import annotations

from pathlib import Path

from orchestrator.host.records.follow import follow


def test_follow_prints_what_is_appended_until_finished(tmp_path: Path) -> None:
    log = tmp_path / "task-0.log"
    written: list[bytes] = []
    polls = iter(range(10))

    def finished() -> bool:
        step = next(polls)
        if step == 1:
            log.write_bytes(b"first\n")
        if step == 2:
            with log.open("ab") as handle:
                handle.write(b"second\n")
        return step >= 2

    position = follow(log, write=written.append, finished=finished, interval=0)
    assert b"".join(written) == b"first\nsecond\n" and position == len(b"first\nsecond\n")


def test_follow_without_the_file_yet_prints_nothing(tmp_path: Path) -> None:
    written: list[bytes] = []
    assert follow(tmp_path / "missing.log", write=written.append, finished=lambda: True) == 0
    assert written == []

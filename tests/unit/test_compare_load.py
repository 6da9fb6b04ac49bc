"""Reading runs for compare: columns, and the records read again for flips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from orchestrator.host.compare.load import load_run
from orchestrator.schema.errors import InputError
from orchestrator.schema.samples import SAMPLES_FILE
from tests.unit.sample_runs import records, write_run


def test_a_run_becomes_columns_and_its_records_can_be_read_again(tmp_path: Path) -> None:
    write_run(tmp_path / "run" / "lm-eval-a", records("a", [1, 0, 1]) + records("b", [0.5, 0.25], metric="f1"))
    write_run(tmp_path / "run" / "lm-eval-c", records("c", [1], statuses=["error"]))
    run = load_run(str(tmp_path / "run"))
    assert list(run.tasks) == ["a", "b", "c"]
    b = run.tasks["b"]
    assert len(b) == 2 and b.scores["f1"].tolist() == [0.5, 0.25] and not b.errors.any()
    assert b.origin.tolist() == [[0, 4], [0, 5]]  # lines 4 and 5 of the first file
    assert [r.prediction for r in b.records([1, 0])] == ["answer 1", "answer 0"]
    c = run.tasks["c"]
    assert c.errors.tolist() == [True] and np.isnan(c.scores.get("acc", np.array([np.nan]))).all()


def test_a_file_changed_after_it_was_read_is_noticed(tmp_path: Path) -> None:
    path = write_run(tmp_path / "A", records("t", [1, 0])) / SAMPLES_FILE
    samples = load_run(str(tmp_path / "A")).tasks["t"]
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[1] + lines[0])
    with pytest.raises(InputError, match="changed while evals read it"):
        samples.records([0])

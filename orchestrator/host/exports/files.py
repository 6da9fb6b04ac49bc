"""The csv and json targets: every score row of the exported tasks, in one file each (``-``: standard output).

CSV: a header line of :data:`~orchestrator.host.exports.rows.COLUMNS`, then one line per row; an absent value is an
empty cell. JSON: an array of objects with the same keys in the same order, null for an absent value. Both are
written whole or not at all (a temporary file renamed over the target).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

from orchestrator.host.exports.rows import COLUMNS, score_rows
from orchestrator.host.exports.tasks import TaskExport, plural
from orchestrator.runtime.run import write_atomic
from orchestrator.schema.tracking import ExportConfig, FileTarget


def csv_text(tasks: list[TaskExport]) -> str:
    """The CSV file's text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for task in tasks:
        for row in score_rows(task):
            writer.writerow(["" if value is None else value for value in row.model_dump().values()])
    return out.getvalue()


def json_text(tasks: list[TaskExport]) -> str:
    """The JSON file's text."""
    rows = [row.model_dump(mode="json") for task in tasks for row in score_rows(task)]
    return json.dumps(rows, indent=2, allow_nan=False) + "\n"


def export_csv(tasks: list[TaskExport], config: ExportConfig, *, base_dir: Path) -> str:
    """Write the CSV file; the line saying where."""
    assert config.csv is not None
    return _write(csv_text(tasks), config.csv, base_dir=base_dir, what=_what(tasks))


def export_json(tasks: list[TaskExport], config: ExportConfig, *, base_dir: Path) -> str:
    """Write the JSON file; the line saying where."""
    assert config.json_file is not None
    return _write(json_text(tasks), config.json_file, base_dir=base_dir, what=_what(tasks))


def _what(tasks: list[TaskExport]) -> str:
    return f"{plural(sum(len(score_rows(task)) for task in tasks), 'score')} of {plural(len(tasks), 'task')}"


def _write(text: str, target: FileTarget, *, base_dir: Path, what: str) -> str:
    if target.path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return f"{what} to standard output"
    path = base_dir / target.path
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text)
    return f"{what} to {path}"

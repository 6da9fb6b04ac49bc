"""JSON Schemas of every YAML file the project reads, for editors and other tools.

``python -m orchestrator.schema.export`` rewrites orchestrator/schema/jsonschema/; a unit
test fails when the committed files differ from what the models generate.
"""

from __future__ import annotations

import json
import sys

from pydantic import BaseModel

from orchestrator.schema.config import RunConfigLayer
from orchestrator.schema.conformance import ConformanceSpec
from orchestrator.schema.contract import SCHEMA_DIR
from orchestrator.schema.framework import FrameworkDefinition
from orchestrator.schema.gate import GatePolicy
from orchestrator.schema.manifest import PrefetchManifest
from orchestrator.schema.record import RunRecord
from orchestrator.schema.requests import RequestRecord
from orchestrator.schema.results import ResultsFile
from orchestrator.schema.samples import SampleRecord
from orchestrator.schema.slurm import SlurmConfig
from orchestrator.schema.suite import Suite
from orchestrator.schema.summary import Summary
from orchestrator.schema.tracking import ExportConfig

SCHEMAS: dict[str, type[BaseModel]] = {
    "framework.schema.json": FrameworkDefinition,
    "run_config.schema.json": RunConfigLayer,
    "results.schema.json": ResultsFile,
    "slurm_config.schema.json": SlurmConfig,
    "run_record.schema.json": RunRecord,
    "prefetch_manifest.schema.json": PrefetchManifest,
    "samples.schema.json": SampleRecord,
    "gate_policy.schema.json": GatePolicy,
    "requests.schema.json": RequestRecord,
    "conformance.schema.json": ConformanceSpec,
    "export_config.schema.json": ExportConfig,
    "suite.schema.json": Suite,
    "summary.schema.json": Summary,
}


def render_schema(model: type[BaseModel]) -> str:
    """The schema text for ``model`` exactly as committed."""
    return json.dumps(model.model_json_schema(mode="validation"), indent=2, sort_keys=True) + "\n"


def main() -> int:
    """Write every schema file; print the ones that changed."""
    SCHEMA_DIR.mkdir(exist_ok=True)
    for name, model in SCHEMAS.items():
        path = SCHEMA_DIR / name
        text = render_schema(model)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

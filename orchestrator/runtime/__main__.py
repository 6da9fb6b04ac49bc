"""``python -m orchestrator.runtime --framework FILE ls|run_eval ...``."""

from orchestrator.runtime.cli import main

raise SystemExit(main())

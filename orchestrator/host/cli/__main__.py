"""``python -m orchestrator.host.cli ...``: the same as ``evals ...``."""

from orchestrator.host.cli.app import main

raise SystemExit(main())

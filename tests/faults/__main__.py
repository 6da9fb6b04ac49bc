"""``python -m tests.faults``: see tests/faults/cli.py."""

from tests.faults.cli import main

raise SystemExit(main())

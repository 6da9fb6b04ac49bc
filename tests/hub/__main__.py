"""``python -m tests.hub``: see tests/hub/cli.py."""

from tests.hub.cli import main

raise SystemExit(main())

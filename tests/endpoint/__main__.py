"""``python -m tests.endpoint``: see tests/endpoint/cli.py."""

from tests.endpoint.cli import main

raise SystemExit(main())

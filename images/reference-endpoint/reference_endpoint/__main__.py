"""`python -m reference_endpoint`: see `reference_endpoint.cli`."""

from reference_endpoint.cli import main

raise SystemExit(main())

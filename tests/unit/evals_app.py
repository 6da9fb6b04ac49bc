"""`evals` built over test doubles (tests/doubles/services.py) and run in-process, as a test invokes it."""

from __future__ import annotations

from dataclasses import dataclass

from typer.testing import CliRunner

from orchestrator.host.cli.app import build_app, main
from orchestrator.host.cli.services import HostServices


@dataclass(frozen=True)
class Evals:
    """The app over ``services``: called, through typer's CliRunner; :meth:`main`, as the `evals` entry point."""

    services: HostServices

    def __call__(self, *args: str) -> tuple[int, str, str]:
        """Exit code, stdout and stderr of one invocation."""
        result = CliRunner().invoke(build_app(self.services), list(args))
        return result.exit_code, result.stdout, result.stderr

    def main(self, argv: list[str]) -> int:
        """The exit code, with errors printed as the entry point prints them."""
        return main(argv, services=self.services)

"""`evals`, the host command line: thin (parse, call :mod:`orchestrator.host.api`, print).

``app`` builds the typer app from the commands and the services it is given (``services``: the real backends, or
test doubles); ``options`` and ``console`` are what the commands share; ``tasks`` (`ls`), ``run`` (`run`,
`resubmit`), ``records`` (`status`, `logs`, `cancel`, `runs`, `show`) and ``data`` (`prefetch`) are the commands.
"""

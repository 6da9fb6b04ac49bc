"""A deterministic OpenAI-compatible model server for tests (stdlib only).

Start it in-process with :func:`tests.endpoint.server.serve`, or as a process with
``python -m tests.endpoint --port N [--record FILE]``. The rules it answers by are in README.md.
"""

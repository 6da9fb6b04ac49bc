"""A fault-injecting OpenAI-compatible endpoint for tests: tests/endpoint's answers, after planned faults.

Start it in-process with :func:`tests.faults.server.serve_faulty`, or as a process with
``python -m tests.faults --port N --plan SPEC``. README.md describes the plan language and the faults.
"""

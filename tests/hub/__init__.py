"""A local stand-in for the Hugging Face Hub that serves repositories in their real layout.

Write the repositories with :func:`tests.hub.repos.build`, start the server in-process with
:func:`tests.hub.server.serve`, or as a process with ``python -m tests.hub --root DIR --port N``, and
point ``HF_ENDPOINT`` at it. What it answers, and why it is not ``hf-local-hub``, is in README.md.
"""

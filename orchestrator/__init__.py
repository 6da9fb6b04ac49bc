"""Container-first evaluation orchestrator for LLM and VLM endpoints."""

__version__ = "0.1.0"

"""The contract: pydantic models, the merge function and JSON Schemas, shared by host and images."""

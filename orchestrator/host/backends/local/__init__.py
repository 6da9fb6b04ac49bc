"""The local backend: containers on this machine's Docker engine, one task after another."""

"""The local backend: containers on this machine's Docker engine, one after another or several at once."""

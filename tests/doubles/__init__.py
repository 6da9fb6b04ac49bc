"""Test doubles for the host's seams: a launcher, a Slurm command line and a Docker engine's images."""

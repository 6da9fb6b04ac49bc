"""Test doubles for the host's seams: the CLI's services, an image catalog, a launcher, container control, a Slurm
command line and a Docker engine's images."""

"""Test doubles for the host's seams: a launcher and a Slurm command line that play back scripted runs."""

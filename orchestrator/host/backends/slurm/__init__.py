"""The Slurm backend: the Slurm command line, the batch script (``script.sh.j2``), the executor, the Epilog."""

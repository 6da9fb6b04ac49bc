"""The host side: what `evals` does on the user's machine.

``cli/`` (thin: parse, call, print, over the services it is built with) calls ``api`` (plan, start,
resume, cancel); ``plan`` resolves each task once and hands its container the result; ``catalog`` reads
the images' tasks from their labels; ``data/`` holds the shared cache and prefetching; ``records/``
keeps and shows run records; ``exports/`` sends results to MLflow, W&B, csv and json; ``backends/``
runs the containers: ``local`` (docker), ``slurm``, ``kubernetes``.
"""

"""Where a run's containers run: one folder per backend, each with everything it needs.

``container`` is what starts one container (the Launcher Protocol and its spec); ``executor`` is what
runs a recorded run's tasks (the Executor Protocol). ``local`` runs them on this machine's Docker
engine, ``slurm`` submits batch jobs, ``kubernetes`` renders Job manifests.
"""

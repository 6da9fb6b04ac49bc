"""The simple-evals image's own code in the harness's venv: where each task's data comes from (``sources``),
staged data used in preference to the Hub and the blob URLs (``staging``), the data step (``datasets_for``) and the
launcher that runs simple-evals with both and exports its per-sample results (``run``)."""

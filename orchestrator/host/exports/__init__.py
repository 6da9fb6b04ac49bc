"""`evals export` and a suite's ``export:``: a run's results sent to tracking servers and files.

``targets`` (``export_run``: every target on its own, outcomes and retry commands), ``tasks`` (what a run holds to
export), ``rows`` (score rows, flat metrics, params and tags), ``command`` (the flags and the retry command), one
module per target: ``files`` (csv, json), ``mlflow_target``, ``wandb_target``.
"""

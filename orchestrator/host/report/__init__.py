"""`evals report`: runs and output directories into one self-contained HTML page (scores, charts, comparisons,
samples, usage, provenance)."""

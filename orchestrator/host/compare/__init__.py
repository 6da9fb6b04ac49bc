"""`evals compare` and `evals gate`: two or more runs matched sample by sample, paired statistics, a release gate."""

"""The Kubernetes backend: Job manifests rendered from a run record (evals does not talk to a cluster)."""

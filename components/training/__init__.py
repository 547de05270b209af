"""Training machinery that knows no model: settings, TF_CONFIG, strategies, input, run_fn,
serving signatures, and the launchers of local and Kubernetes workers."""

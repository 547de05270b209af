"""The pipeline as a product: configuration, DAG, runners, preflight checks and the CLI."""

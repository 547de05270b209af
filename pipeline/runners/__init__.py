"""Thin runners: each builds the DAG with `create_pipeline(config)` and hands it on."""

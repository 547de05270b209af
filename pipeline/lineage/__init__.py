"""Lineage in ML Metadata: upstream from a model, downstream from data, and runs."""

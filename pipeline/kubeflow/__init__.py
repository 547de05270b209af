"""Kubeflow Pipelines v2: compile, the container entrypoint, submit and schedule."""

"""The taxi pipeline as a product: configuration, DAG, runners and CLI."""

import components  # noqa: F401 - sets TF_USE_LEGACY_KERAS before TensorFlow loads

"""The model registry: versioned, verifiable SavedModels laid out for TF Serving."""

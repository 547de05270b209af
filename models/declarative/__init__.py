"""The declarative model package: the features, preprocessing and model come from the YAML.

Numeric features are filled and z-scored (or quantile-bucketed), categorical
ones get a top-k vocabulary with OOV buckets, text is tokenized inside the
transform graph. The model is wide and deep: a linear part over every
category and token, and an MLP over the numerics and the embeddings.
"""

from models.declarative.model import build_model
from models.declarative.preprocessing import preprocessing_fn

__all__ = ["build_model", "preprocessing_fn"]

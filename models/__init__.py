"""Model packages: each turns a workload (the configuration's `model` section) into a
preprocessing_fn and a Keras model, behind the protocol of components/model_package.py.

- `models.declarative`: features from the YAML alone (numeric, categorical, text).
- `models.taxi`: the Chicago Taxi default's one custom piece, its derived label.
"""

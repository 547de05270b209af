"""Clients for the pushed model behind TF Serving: `predict` and `loadtest`.

- `rows`: CSV rows typed by the feature registry, as REST instances or
  serialized tf.Examples.
- `client`: one `PredictClient` interface over TF Serving's REST and gRPC APIs.
- `loadtest`: concurrent requests for a while, with latency percentiles.
- `commands`: the `predict` and `loadtest` subcommands of `python -m pipeline`.

Nothing here imports TensorFlow or gRPC at import time, so the CLI starts fast.
"""

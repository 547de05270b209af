"""Clients for the pushed model behind TF Serving: `predict` and `loadtest`.

- `rows`: CSV rows typed by the workload's serving columns, as REST
  instances or serialized tf.Examples.
- `client`: one `PredictClient` interface over TF Serving's REST and gRPC APIs.
- `loadtest`: concurrent requests for a while, with latency percentiles.
- `columns`: the configured workload's serving columns, from the curated schema.

The `predict` and `loadtest` commands are `pipeline.cli.serving`.

Nothing here imports TensorFlow or gRPC at import time, so the CLI starts fast.
"""

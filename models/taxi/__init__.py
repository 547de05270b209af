"""The Chicago Taxi default workload's one custom piece: its derived label.

The workload itself is configuration (`pipeline/configs/local.yaml`, model
section) for the declarative package; its curated schema is `schema.pbtxt`
here. Will the tip exceed 20% of the fare? The data has the tip and the
fare, not the answer, so `labels.big_tipper` computes it inside the
transform graph.
"""

"""Fails the run on any ExampleValidator anomaly, before anything is trained."""

"""Imports the curated schema by content rather than by path."""

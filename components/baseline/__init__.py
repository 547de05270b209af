"""Finds the baseline for the Evaluator: the pipeline's latest blessed model."""

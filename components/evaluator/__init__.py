"""TFX's Evaluator, taking its baseline as a `BaselineLookup` reference."""

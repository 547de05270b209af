"""TFX's generic Trainer with its step counts as plain (runtime-settable) ints."""

"""The project's generic machinery: custom TFX components and the libraries they share.

Nothing here imports a model package by name (components/model_package.py
loads the configured one) and nothing writes the environment at import
time: entry points call `components.environment.prepare()` first.
"""

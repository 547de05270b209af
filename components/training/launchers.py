"""Picks the launcher that `trainer.launcher` names (see settings.py for the table)."""

from __future__ import annotations

from components.training.settings import LOCAL, TrainerSettings
from components.training.workers import Launcher


def make_launcher(settings: TrainerSettings) -> Launcher:
    """The launcher of `settings.launcher`, for `settings.workers` workers."""
    if settings.launcher == LOCAL:
        from components.training.local_workers import LocalWorkers

        return LocalWorkers(settings.workers, settings.max_restarts)
    from components.training.kubernetes_workers import KubernetesLauncher

    return KubernetesLauncher(settings)

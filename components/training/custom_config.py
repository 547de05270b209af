"""What the Trainer's custom_config carries: the workload and the trainer settings.

Light (no TensorFlow), so that the pipeline definition builds it without
loading the training code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from components import model_package
from components.training.settings import TrainerSettings
from components.workload import Workload

TRAINER_KEY = "trainer"


def trainer_custom_config(workload: Workload, settings: TrainerSettings) -> dict[str, Any]:
    """The Trainer's custom_config: the workload, the code's fingerprint and the settings.

    The settings travel without their step counts, which are parameters of
    their own (settable per run on Kubeflow).
    """
    return {**model_package.custom_config(workload), TRAINER_KEY: json.loads(settings.to_json())}


def settings_of(
    config: Mapping[str, Any] | None, train_steps: int, eval_steps: int
) -> TrainerSettings:
    """The trainer settings a Trainer's custom_config carries, with the run's step counts."""
    return TrainerSettings.from_plain((config or {}).get(TRAINER_KEY, {}), train_steps, eval_steps)

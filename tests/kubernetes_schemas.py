"""Validates manifests the way the API server would: Kubernetes schemas, strictly.

Core kinds (Job, Service, Role, ...) go through kubernetes-validate, which
ships the upstream OpenAPI schemas per Kubernetes version; strict mode
rejects unknown fields. TFJob is a custom resource: it is checked against the
Training Operator's CRD schema vendored in tests/schemas (see its README).
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

# scripts/ensure_venv.sh installs kubernetes-validate here, off sys.path.
TEST_TOOLS = Path(sys.prefix) / "test-tools"
if str(TEST_TOOLS) not in sys.path:
    sys.path.append(str(TEST_TOOLS))
import kubernetes_validate  # noqa: E402

KUBERNETES_VERSION = "1.29.0"
TFJOB_SCHEMA = Path(__file__).parent / "schemas" / "tfjob-kubeflow-v1.json"
# The CRD declares restartPolicy as a plain string; the operator's Go types
# enumerate these.
TFJOB_RESTART_POLICIES = ("Always", "OnFailure", "Never", "ExitCode")


# Prometheus Operator custom resources, by kind (see schemas/README.md).
MONITORING_SCHEMAS = {
    "ServiceMonitor": Path(__file__).parent
    / "schemas"
    / "servicemonitor-monitoring-coreos-com-v1.json",
    "PrometheusRule": Path(__file__).parent
    / "schemas"
    / "prometheusrule-monitoring-coreos-com-v1.json",
}


@cache
def _tfjob_validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(TFJOB_SCHEMA.read_text()))


@cache
def _monitoring_validator(kind: str) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(MONITORING_SCHEMAS[kind].read_text()))


def _validate_custom(manifest: dict[str, Any], validator: jsonschema.Draft7Validator) -> None:
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.path))
    if errors:
        raise ValueError("; ".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors))


def validate(manifest: dict[str, Any]) -> None:
    """Raises ValueError naming the problem if `manifest` is not a valid object."""
    if manifest.get("kind") in MONITORING_SCHEMAS:
        if manifest.get("apiVersion") != "monitoring.coreos.com/v1":
            raise ValueError(
                f"{manifest['kind']} apiVersion must be monitoring.coreos.com/v1: "
                f"{manifest.get('apiVersion')}"
            )
        _validate_custom(manifest, _monitoring_validator(manifest["kind"]))
        return
    if manifest.get("kind") == "TFJob":
        if manifest.get("apiVersion") != "kubeflow.org/v1":
            raise ValueError(
                f"TFJob apiVersion must be kubeflow.org/v1: {manifest.get('apiVersion')}"
            )
        errors = sorted(_tfjob_validator().iter_errors(manifest), key=lambda e: list(e.path))
        if errors:
            raise ValueError(
                "; ".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)
            )
        for role, spec in manifest["spec"]["tfReplicaSpecs"].items():
            if spec.get("restartPolicy") not in TFJOB_RESTART_POLICIES:
                raise ValueError(f"TFJob {role}.restartPolicy: {spec.get('restartPolicy')!r}")
        return
    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.path)
        raise ValueError(f"{manifest.get('kind')} {path}: {e.message}") from None

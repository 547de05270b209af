"""The TF Serving manifests in kubernetes/serving, rendered and checked.

Every overlay (and the base) is rendered with `kubectl kustomize`. Each object
is validated strictly against the Kubernetes 1.29 schemas. The TF Serving
config files are parsed with TF Serving's own protos (tests/serving_protos.py).
The S3 overlay's sync script runs against a fake `aws` command. Nothing here
needs a cluster, and the TF Serving binary itself is not run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.config import load_config
from tests import kubernetes_schemas, serving_protos

ROOT = Path(__file__).resolve().parent.parent
SERVING = ROOT / "kubernetes" / "serving"
TARGETS = {
    "base": SERVING / "base",
    "gcs": SERVING / "overlays" / "gcs",
    "s3": SERVING / "overlays" / "s3",
    "local": SERVING / "overlays" / "local",
    "gpu": SERVING / "overlays" / "gpu",
}
NAMESPACE = "taxi-serving"
SERVER = "tensorflow-serving"
MODELS_CONFIGMAP = "taxi-serving-models"
SERVING_IMAGE = {
    "base": "tensorflow/serving:2.16.1",
    "gcs": "tensorflow/serving:2.16.1",
    "s3": "tensorflow/serving:2.16.1",
    "local": "tensorflow/serving:2.16.1",
    "gpu": "tensorflow/serving:2.16.1-gpu",
}
# What models.config's base_path must be, per overlay. The s3 overlay reads a
# local copy that its sidecar syncs from S3 (checked on its own below).
KUBEFLOW = load_config(ROOT / "pipeline" / "configs" / "kubeflow.yaml")
GCS_MODEL_DIR = f"{KUBEFLOW.registry.uri.rstrip('/')}/{KUBEFLOW.registry.model_name}"
BASE_PATH = {
    "base": "/models/taxi",
    "gcs": GCS_MODEL_DIR,
    "s3": "/models/taxi",
    "local": "/models/taxi",
    "gpu": GCS_MODEL_DIR,
}
S3_CREDENTIALS_SECRET = "taxi-serving-s3-credentials"
S3_SYNC_SCRIPT = SERVING / "overlays" / "s3" / "s3-sync.sh"

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")


@cache
def _render(target: str) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        ["kubectl", "kustomize", str(TARGETS[target])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {TARGETS[target]}: {result.stderr}"
    return tuple(o for o in yaml.safe_load_all(result.stdout) if o)


def render(target: str) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize` renders for a target (a fresh copy)."""
    return json.loads(json.dumps(_render(target)))


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "Deployment")["spec"]["template"]["spec"]


def server(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return next(c for c in pod_spec(objects)["containers"] if c["name"] == SERVER)


def flags(container: dict[str, Any]) -> dict[str, str]:
    """The container's `--name=value` args as a dict."""
    parsed = {}
    for arg in container["args"]:
        match = re.fullmatch(r"--([a-z_]+)=(.*)", arg)
        assert match, f"{container['name']}: arg {arg!r} is not --name=value"
        parsed[match[1]] = match[2]
    return parsed


def configmap_files(objects: list[dict[str, Any]]) -> dict[str, str]:
    """Every file of every rendered ConfigMap, by its key."""
    files: dict[str, str] = {}
    for cm in (o for o in objects if o["kind"] == "ConfigMap"):
        for key, text in cm.get("data", {}).items():
            assert key not in files, f"two ConfigMaps hold {key}"
            files[key] = text
    return files


def models_config(target: str):  # type: ignore[no-untyped-def]
    """The deployed models.config of a target, parsed."""
    protos = serving_protos.load()
    text = one(render(target), "ConfigMap", MODELS_CONFIGMAP)["data"]["models.config"]
    return serving_protos.parse(
        text, protos.model_server_config_pb2.ModelServerConfig(), f"{target}: models.config"
    )


def config_message(file_name: str):  # type: ignore[no-untyped-def]
    """An empty message of the type TF Serving reads a config file of this name into."""
    protos = serving_protos.load()
    message = {
        "models.config": protos.model_server_config_pb2.ModelServerConfig,
        "batching.config": protos.session_bundle_config_pb2.BatchingParameters,
        "monitoring.config": protos.monitoring_config_pb2.MonitoringConfig,
    }.get(file_name)
    assert message is not None, f"{file_name}: no known TF Serving config message for this name"
    return message()


def parse_config_file(path: Path):  # type: ignore[no-untyped-def]
    """Parses a TF Serving config file into the message its server flag reads."""
    return serving_protos.parse(path.read_text(), config_message(path.name), str(path))


# -- rendering and schemas -----------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_renders_and_validates_strictly(target):
    objects = render(target)
    for obj in objects:
        kubernetes_schemas.validate(obj)
    kinds = sorted(o["kind"] for o in objects)
    for kind in (
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ServiceAccount",
    ):
        assert kinds.count(kind) == 1, f"{target}: {kind} x{kinds.count(kind)}"
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == NAMESPACE, (
                f"{target}: {obj['kind']} {obj['metadata']['name']} is not in {NAMESPACE}"
            )


def test_schema_validation_rejects_a_broken_deployment():
    deployment = one(render("gcs"), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["prt"] = (
        8501
    )
    with pytest.raises(ValueError, match="prt"):
        kubernetes_schemas.validate(deployment)


@pytest.mark.parametrize("target", TARGETS)
def test_every_reference_resolves(target):
    objects = render(target)
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    spec = pod_spec(objects)
    assert ("ServiceAccount", spec["serviceAccountName"]) in names
    referenced: set[tuple[str, str]] = set()
    for volume in spec.get("volumes", []):
        if "configMap" in volume:
            referenced.add(("ConfigMap", volume["configMap"]["name"]))
        for source in volume.get("projected", {}).get("sources", []):
            referenced.add(("ConfigMap", source["configMap"]["name"]))
        if "persistentVolumeClaim" in volume:
            referenced.add(("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]))
    secrets = set()
    for container in spec["containers"] + spec.get("initContainers", []):
        for source in container.get("envFrom", []):
            referenced.add(("ConfigMap", source["configMapRef"]["name"]))
        for env in container.get("env", []):
            if "secretKeyRef" in env.get("valueFrom", {}):
                secrets.add(env["valueFrom"]["secretKeyRef"]["name"])
    # A generated ConfigMap that a patch refers to keeps its hash suffix only
    # when kustomize resolves the reference; a miss shows up here.
    assert referenced <= names, f"{target}: unresolved {sorted(referenced - names)}"
    # The one Secret the pods use is created by hand (never rendered, see below).
    assert secrets <= {S3_CREDENTIALS_SECRET}, f"{target}: secrets {secrets}"


# -- containers -----------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_every_container_has_probes_and_resources(target):
    spec = pod_spec(render(target))
    for container in spec["containers"]:
        for probe in ("readinessProbe", "livenessProbe"):
            assert probe in container, f"{target}: {container['name']} has no {probe}"
    for container in spec["containers"] + spec.get("initContainers", []):
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                assert resource in resources.get(kind, {}), (
                    f"{target}: {container['name']} has no {resource} in resources.{kind}"
                )
        security = container.get("securityContext", {})
        assert security.get("allowPrivilegeEscalation") is False, container["name"]
        assert security.get("capabilities", {}).get("drop") == ["ALL"], container["name"]


@pytest.mark.parametrize("target", TARGETS)
def test_server_probes_ask_for_the_served_model(target):
    container = server(render(target))
    model = models_config(target).model_config_list.config[0]
    paths = {
        probe: container[probe]["httpGet"]["path"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    assert paths["startupProbe"] == paths["livenessProbe"] == f"/v1/models/{model.name}"
    # Readiness needs the stable version loaded: a metadata request through
    # its label fails until then.
    assert paths["readinessProbe"] == f"/v1/models/{model.name}/labels/stable/metadata"
    assert "stable" in model.version_labels
    for probe in paths:
        assert container[probe]["httpGet"]["port"] == "http"


@pytest.mark.parametrize("target", TARGETS)
def test_images_are_pinned(target):
    spec = pod_spec(render(target))
    images = [c["image"] for c in spec["containers"] + spec.get("initContainers", [])]
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name and tag and "/" not in tag, f"{target}: {image} has no tag"
        assert tag != "latest", f"{target}: {image}"
    assert server(render(target))["image"] == SERVING_IMAGE[target]


def test_gpu_overlay_requests_a_gpu_and_tolerates_gpu_nodes():
    objects = render("gpu")
    resources = server(objects)["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == 1
    tolerations = pod_spec(objects)["tolerations"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
    for target in ("base", "gcs", "s3", "local"):
        assert "nvidia.com/gpu" not in server(render(target))["resources"]["limits"], target


@pytest.mark.parametrize("target", TARGETS)
def test_args_name_files_of_the_mounted_configmaps(target):
    objects = render(target)
    container = server(objects)
    args = flags(container)
    assert container["command"] == ["/usr/bin/tensorflow_model_server"]
    assert args["port"] == "8500" and args["rest_api_port"] == "8501"
    assert args["enable_batching"] == "true"
    assert args["allow_version_labels_for_unavailable_models"] == "true"
    assert int(args["model_config_file_poll_wait_seconds"]) > 0
    assert int(args["file_system_poll_wait_seconds"]) > 0
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(objects)["volumes"]}
    configmaps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
    for flag in ("model_config_file", "batching_parameters_file", "monitoring_config_file"):
        path = Path(args[flag])
        mount = mounts.get(str(path.parent))
        assert mount, f"{target}: --{flag}={path}: nothing is mounted at {path.parent}"
        # subPath mounts never see ConfigMap updates.
        assert "subPath" not in mount, f"{target}: {path.parent} is mounted with subPath"
        volume = volumes[mount["name"]]
        sources = [s["configMap"] for s in volume.get("projected", {}).get("sources", [])]
        sources += [volume["configMap"]] if "configMap" in volume else []
        holders = [s["name"] for s in sources if path.name in configmaps[s["name"]]["data"]]
        assert len(holders) == 1, f"{target}: --{flag}={path}: {path.name} is in {holders}"
        if flag == "model_config_file":
            # Polled while the pods run: a fixed name, so edits reach them.
            assert holders == [MODELS_CONFIGMAP]
        else:
            # Read once at start: a hashed name, so edits roll the pods.
            assert re.fullmatch(r"taxi-serving-server-[a-z0-9]{10}", holders[0]), holders


@pytest.mark.parametrize("target", TARGETS)
def test_thread_pools_match_the_cpu_limit(target):
    objects = render(target)
    container = server(objects)
    args = flags(container)
    cpus = int(container["resources"]["limits"]["cpu"])
    protos = serving_protos.load()
    batching = serving_protos.parse(
        configmap_files(objects)["batching.config"],
        protos.session_bundle_config_pb2.BatchingParameters(),
        f"{target}: batching.config",
    )
    assert int(args["tensorflow_intra_op_parallelism"]) == cpus
    assert int(args["tensorflow_inter_op_parallelism"]) == cpus
    assert batching.num_batch_threads.value == cpus


@pytest.mark.parametrize("target", TARGETS)
def test_prometheus_annotations_match_monitoring_config(target):
    objects = render(target)
    protos = serving_protos.load()
    monitoring = serving_protos.parse(
        configmap_files(objects)["monitoring.config"],
        protos.monitoring_config_pb2.MonitoringConfig(),
        f"{target}: monitoring.config",
    )
    annotations = one(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert monitoring.prometheus_config.enable
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == monitoring.prometheus_config.path
    http = next(p for p in server(objects)["ports"] if p["name"] == "http")
    assert annotations["prometheus.io/port"] == str(http["containerPort"]) == "8501"


# -- service, autoscaling, disruption budget ------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_service_exposes_grpc_and_http(target):
    objects = render(target)
    service = one(objects, "Service")
    assert service["spec"]["type"] == "ClusterIP"
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert ports["grpc"]["port"] == 8500 and ports["http"]["port"] == 8501
    container_ports = {p["name"]: p["containerPort"] for p in server(objects)["ports"]}
    for name, port in ports.items():
        assert container_ports[port["targetPort"]] == port["port"], name
    labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


@pytest.mark.parametrize("target", TARGETS)
def test_hpa_and_pdb_cover_the_deployment(target):
    objects = render(target)
    deployment = one(objects, "Deployment")
    # The HPA owns the replica count; a fixed one would fight it on every apply.
    assert "replicas" not in deployment["spec"]
    hpa = one(objects, "HorizontalPodAutoscaler")
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["apiVersion"], ref["kind"], ref["name"]) == (
        "apps/v1",
        "Deployment",
        deployment["metadata"]["name"],
    )
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    pdb = one(objects, "PodDisruptionBudget")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert hpa["spec"]["minReplicas"] > pdb["spec"]["maxUnavailable"]


# -- secrets and credentials ----------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_no_secret_is_rendered(target):
    objects = render(target)
    assert not [o for o in objects if o["kind"] == "Secret"]
    spec = pod_spec(objects)
    for container in spec["containers"] + spec.get("initContainers", []):
        for env in container.get("env", []):
            if re.search(r"KEY|SECRET|TOKEN|PASSWORD", env["name"]):
                assert "value" not in env, f"{target}: {container['name']} {env['name']} literal"
    for cm in (o for o in objects if o["kind"] == "ConfigMap"):
        for key in cm.get("data", {}):
            assert not re.search(r"KEY|SECRET|TOKEN|PASSWORD", key), f"{target}: {key} in {cm}"


def test_gcs_overlay_uses_workload_identity():
    account = one(render("gcs"), "ServiceAccount")
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].endswith(
        ".iam.gserviceaccount.com"
    )
    assert "secrets" not in account


def test_s3_overlay_takes_credentials_from_a_secret_and_syncs_from_s3():
    objects = render("s3")
    spec = pod_spec(objects)
    sync = [c for c in spec["containers"] + spec["initContainers"] if c["name"].startswith("sync-")]
    assert sorted(c["name"] for c in sync) == ["sync-models", "sync-models-once"]
    configmaps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
    base_path = models_config("s3").model_config_list.config[0].base_path
    for container in sync:
        env = {e["name"]: e for e in container["env"]}
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert env[key]["valueFrom"]["secretKeyRef"] == {
                "name": S3_CREDENTIALS_SECRET,
                "key": key,
            }
        (source,) = container["envFrom"]
        settings = configmaps[source["configMapRef"]["name"]]["data"]
        for key in ("AWS_REGION", "S3_ENDPOINT", "S3_USE_HTTPS", "S3_VERIFY_SSL"):
            assert key in settings, key
        # The sidecar fills the folder the server reads...
        assert settings["MODEL_DIR"] == base_path
        # ...from the registry's model folder, in the same layout as on GCS.
        assert settings["MODEL_SOURCE"] == "s3://" + GCS_MODEL_DIR.removeprefix("gs://")
        assert container["command"][:2] == ["/bin/bash", "/etc/s3-sync/s3-sync.sh"]
        # One pass before the server starts; then the sidecar loops.
        assert ("--once" in container["command"]) == (container["name"] == "sync-models-once")
    mounts = {m["mountPath"]: m["name"] for m in server(objects)["volumeMounts"]}
    models_volume = mounts["/models"]
    for container in sync:
        assert {"name": models_volume, "mountPath": "/models"} in container["volumeMounts"]
    script = configmap_files(objects)["s3-sync.sh"]
    assert script == S3_SYNC_SCRIPT.read_text()


def test_local_overlay_mounts_the_claim_at_models():
    objects = render("local")
    claim = one(objects, "PersistentVolumeClaim")
    volumes = {v["name"]: v for v in pod_spec(objects)["volumes"]}
    mount = next(m for m in server(objects)["volumeMounts"] if m["mountPath"] == "/models")
    volume = volumes[mount["name"]]
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert mount.get("readOnly") is True


# -- TF Serving config files ----------------------------------------------------------


CONFIG_FILES = sorted(SERVING.rglob("*.config"))


def test_config_files_are_found():
    names = sorted(str(p.relative_to(SERVING)) for p in CONFIG_FILES)
    assert names == [
        "base/batching.config",
        "base/models.config",
        "base/monitoring.config",
        "overlays/canary/canary-track/models.config",
        "overlays/canary/stable-track/models.config",
        "overlays/gcs/models.config",
        "overlays/local/models.config",
        "overlays/s3/models.config",
    ]


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: str(p.relative_to(SERVING)))
def test_config_file_parses_with_the_serving_protos(path):
    message = parse_config_file(path)
    assert message.ByteSize() > 0, f"{path} is empty"


@pytest.mark.parametrize("target", TARGETS)
def test_models_config_serves_taxi_with_stable_and_canary(target):
    config = models_config(target)
    (model,) = config.model_config_list.config
    assert model.name == KUBEFLOW.registry.model_name == "taxi"
    assert model.model_platform == "tensorflow"
    assert model.model_version_policy.WhichOneof("policy_choice") == "specific"
    versions = set(model.model_version_policy.specific.versions)
    assert versions and all(v > 0 for v in versions)
    labels = dict(model.version_labels)
    assert {"stable", "canary"} <= labels.keys()
    assert set(labels.values()) <= versions, f"{target}: labels {labels} not in {versions}"
    assert model.base_path == BASE_PATH[target]


def test_gcs_base_path_is_the_pipelines_registry():
    assert GCS_MODEL_DIR == "gs://YOUR_BUCKET/taxi/registry/taxi"
    assert models_config("gcs").model_config_list.config[0].base_path == GCS_MODEL_DIR


@pytest.mark.parametrize(
    ("file", "text", "error"),
    [
        ("models.config", 'model_config_list { config { nme: "taxi" } }', 'no field named "nme"'),
        ("models.config", "model_config_list { config { name: taxi } }", "Expected string"),
        (
            "models.config",
            'model_config_list { config { name: "taxi" base_path: "/m" }',
            "Expected",
        ),
        ("batching.config", "max_batch_size: 128", 'Expected "{"'),
        ("batching.config", "max_batch_size { value: 128 } bogus { }", 'no field named "bogus"'),
        ("monitoring.config", "prometheus_config { enable: yes }", "enable"),
    ],
)
def test_parse_rejects_broken_text_protos(tmp_path, file, text, error):
    path = tmp_path / file
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(error)) as raised:
        parse_config_file(path)
    assert str(path) in str(raised.value) and "tensorflow.serving." in str(raised.value)


def test_a_typo_in_a_real_config_file_is_caught(tmp_path):
    broken = tmp_path / "models.config"
    broken.write_text(
        (SERVING / "base" / "models.config").read_text().replace("version_labels", "version_label")
    )
    with pytest.raises(ValueError, match='no field named "version_label"'):
        parse_config_file(broken)


# -- the S3 sync script ---------------------------------------------------------------


FAKE_AWS = """#!{python}
# A stand-in for `aws s3 sync SRC DST [--delete] [--exclude P]...`: s3://
# paths map to folders under $FAKE_S3_ROOT. Logs its arguments.
import fnmatch, json, os, shutil, sys
from pathlib import Path

args = sys.argv[1:]
with open(os.environ["FAKE_AWS_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if os.environ.get("FAKE_AWS_FAIL"):
    sys.exit("fake aws: simulated network failure")
i = args.index("s3")
assert args[i + 1] == "sync", args
source = Path(os.environ["FAKE_S3_ROOT"]) / args[i + 2].removeprefix("s3://")
target = Path(args[i + 3])
excludes = [args[j + 1] for j, a in enumerate(args) if a == "--exclude"]
def wanted(rel):
    return not any(fnmatch.fnmatch(rel, p) for p in excludes)
present = set()
for path in source.rglob("*"):
    rel = path.relative_to(source).as_posix()
    if path.is_file() and wanted(rel):
        present.add(rel)
        out = target / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        if not out.exists() or out.read_bytes() != path.read_bytes():
            shutil.copyfile(path, str(out) + ".tmp")
            os.replace(str(out) + ".tmp", out)
if "--delete" in args:
    for path in list(target.rglob("*")):
        rel = path.relative_to(target).as_posix()
        if path.is_file() and wanted(rel) and rel not in present:
            path.unlink()
    for path in sorted(target.rglob("*"), reverse=True):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
"""


@pytest.fixture
def s3_sync(tmp_path):
    """s3-sync.sh --once against a fake bucket.

    Returns:
        (bucket folder, the pod's model folder, run), where run(**env) runs the
        script and returns its process result and the fake aws calls' arguments.
    """
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    aws = bin_dir / "aws"
    aws.write_text(FAKE_AWS.replace("{python}", sys.executable))
    aws.chmod(aws.stat().st_mode | stat.S_IXUSR)
    bucket = tmp_path / "s3" / "bucket" / "taxi" / "registry" / "taxi"
    bucket.mkdir(parents=True)
    models = tmp_path / "pod" / "models" / "taxi"
    log = tmp_path / "aws.log"

    def run(**env: str) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
        result = subprocess.run(
            ["bash", str(S3_SYNC_SCRIPT), "--once"],
            env={
                "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                "MODEL_SOURCE": "s3://bucket/taxi/registry/taxi",
                "MODEL_DIR": str(models),
                "FAKE_S3_ROOT": str(tmp_path / "s3"),
                "FAKE_AWS_LOG": str(log),
                **env,
            },
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        log.unlink(missing_ok=True)
        return result, calls

    return bucket, models, run


def _push(bucket: Path, version: int, complete: bool = True) -> None:
    folder = bucket / str(version)
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph %d" % version)
    (folder / "variables" / "variables.index").write_bytes(b"index")
    if complete:
        (folder / "manifest.json").write_text("{}")


def test_s3_sync_publishes_only_complete_versions(s3_sync):
    bucket, models, run = s3_sync
    _push(bucket, 1)
    _push(bucket, 2, complete=False)  # a push still under way
    (bucket / ".claims").mkdir()
    (bucket / ".claims" / "2").write_text("claim")

    result, calls = run()
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in models.iterdir()) == ["1"]
    assert (models / "1" / "saved_model.pb").read_bytes() == b"graph 1"
    assert (models / "1" / "variables" / "variables.index").exists()
    assert int((models.parent / ".last-sync").read_text()) > 0
    (call,) = calls
    assert call[:2] == ["s3", "sync"] and call[call.index("--exclude") + 1] == ".*"
    assert "--delete" in call
    assert not (models.parent / ".download" / "taxi" / ".claims").exists()

    # The push of 2 finishes and retention deletes 1.
    (bucket / "2" / "manifest.json").write_text("{}")
    shutil.rmtree(bucket / "1")
    result, _ = run()
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in models.iterdir()) == ["2"]
    assert "published version 2" in result.stdout and "removed version 1" in result.stdout


def test_s3_sync_uses_the_minio_endpoint_settings(s3_sync):
    bucket, _, run = s3_sync
    _push(bucket, 1)
    result, (call,) = run(S3_ENDPOINT="minio.minio:9000", S3_USE_HTTPS="0", S3_VERIFY_SSL="0")
    assert result.returncode == 0, result.stderr
    assert call[:4] == ["--endpoint-url", "http://minio.minio:9000", "--no-verify-ssl", "s3"]
    _, (call,) = run(S3_ENDPOINT="s3.example:443")
    assert call[:3] == ["--endpoint-url", "https://s3.example:443", "s3"]
    # AWS S3 itself: no endpoint.
    _, (call,) = run()
    assert call[:2] == ["s3", "sync"]


def test_s3_sync_fails_loudly_and_keeps_the_heartbeat(s3_sync):
    bucket, models, run = s3_sync
    _push(bucket, 1)
    assert run()[0].returncode == 0
    heartbeat = models.parent / ".last-sync"
    heartbeat.write_text("1")
    result, _ = run(FAKE_AWS_FAIL="1")
    assert result.returncode != 0
    assert "simulated network failure" in result.stderr
    assert heartbeat.read_text() == "1"
    assert (models / "1" / "saved_model.pb").exists()
    result, calls = run(MODEL_SOURCE="")
    assert result.returncode != 0 and "MODEL_SOURCE" in result.stderr
    assert calls == []


@pytest.mark.parametrize("fail", [False, True], ids=["ok", "aws-fails"])
def test_s3_sync_loop_keeps_going(s3_sync, tmp_path, fail):
    bucket, models, _ = s3_sync
    _push(bucket, 1)
    bin_dir = tmp_path / "bin"
    log = tmp_path / "aws.log"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "MODEL_SOURCE": "s3://bucket/taxi/registry/taxi",
        "MODEL_DIR": str(models),
        "SYNC_INTERVAL_SECONDS": "0.1",
        "FAKE_S3_ROOT": str(tmp_path / "s3"),
        "FAKE_AWS_LOG": str(log),
        **({"FAKE_AWS_FAIL": "1"} if fail else {}),
    }
    with subprocess.Popen(
        ["bash", str(S3_SYNC_SCRIPT)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if log.exists() and len(log.read_text().splitlines()) >= 3:
                    break
                assert process.poll() is None, process.communicate()
                time.sleep(0.05)
            # Still running after three passes, failed or not.
            assert process.poll() is None
        finally:
            process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert len(log.read_text().splitlines()) >= 3
    if fail:
        assert "sync of s3://bucket/taxi/registry/taxi failed; retrying" in stderr
        assert not models.exists() or not any(models.iterdir())
    else:
        assert (models / "1" / "manifest.json").exists()

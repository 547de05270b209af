"""The Kubernetes trainer launchers, their manifests and the trainer RBAC.

Manifests are checked for real against the Kubernetes schemas (strict
kubernetes-validate) and the Training Operator's TFJob CRD schema. The
launcher runs against tests/fake_kubernetes.py, a TEST DOUBLE of the
Kubernetes API (no cluster here): the real `kubernetes` client sends real
requests to it, but pods follow a script instead of running.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import tensorflow as tf
import yaml
from kubernetes import client as k8s

from components.errors import ConfigError
from components.training import manifests
from components.training.cluster import parse_tf_config, worker_cluster
from components.training.custom_config import settings_of
from components.training.kubernetes_workers import KubernetesLauncher, KubernetesLaunchError
from components.training.settings import (
    INDEXED_JOB,
    TFJOB,
    ComponentResources,
    KubernetesWorkers,
    TrainerSettings,
)
from components.training.workers import WorkerFailedError
from pipeline import definition
from pipeline.config import load_config
from tests import kubernetes_schemas
from tests.conftest import fn_args_under
from tests.fake_kubernetes import FakeKubernetes, WorkerScript

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "team-a"
OWN_POD = "mlops-trainer-abcde"
OWN_IMAGE = "registry.example/mlops:abc123def456"
GPU = KubernetesWorkers(
    resources=ComponentResources(
        cpu_request=4, cpu_limit=8, memory_request_gb=16, memory_limit_gb=32, accelerator_count=1
    ),
    node_selector={"cloud.google.com/gke-accelerator": "nvidia-l4"},
)


def _pods(workers: int = 3, settings: KubernetesWorkers = GPU) -> manifests.WorkerPods:
    return manifests.WorkerPods(
        name="trainer-0123456789",
        namespace=NAMESPACE,
        image=OWN_IMAGE,
        command=("python", "-m", "components.training.worker", "--fn-args", "gs://b/f.json"),
        workers=workers,
        backoff_limit=2 * workers,
        settings=settings,
    )


# -- manifests ---------------------------------------------------------------------


def test_indexed_job_and_service_validate_and_agree():
    pods = _pods()
    job, service = manifests.indexed_job(pods), manifests.headless_service(pods)
    kubernetes_schemas.validate(job)
    kubernetes_schemas.validate(service)

    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 3
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"]
    assert service["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()
    container = pod["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "4", "memory": "16G", "nvidia.com/gpu": 1},
        "limits": {"cpu": "8", "memory": "32G", "nvidia.com/gpu": 1},
    }
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    hosts = container["command"][container["command"].index("--hosts") + 1].split(",")
    assert hosts == [
        f"trainer-0123456789-{i}.trainer-0123456789.{NAMESPACE}.svc:2222" for i in range(3)
    ]


def test_tfjob_validates_against_the_crd_schema():
    job = manifests.tfjob(_pods(workers=2))
    kubernetes_schemas.validate(job)
    worker = job["spec"]["tfReplicaSpecs"]["Worker"]
    assert worker["replicas"] == 2
    container = worker["template"]["spec"]["containers"][0]
    assert container["name"] == "tensorflow"
    assert "--hosts" not in container["command"]  # the operator sets TF_CONFIG
    # The operator reads the TF_CONFIG port from the port of this name.
    assert container["ports"] == [{"name": "tfjob-port", "containerPort": 2222}]


def test_the_schemas_catch_mistakes():
    job = manifests.indexed_job(_pods())
    job["spec"]["template"]["spec"]["containers"][0]["imagee"] = "x"
    with pytest.raises(ValueError, match="imagee"):
        kubernetes_schemas.validate(job)
    tfjob = manifests.tfjob(_pods())
    tfjob["spec"]["tfReplicaSpecs"]["Worker"]["replicas"] = "2"
    with pytest.raises(ValueError, match="replicas"):
        kubernetes_schemas.validate(tfjob)


def test_tpu_workers_get_the_tpu_resource_and_node_pool():
    tpu = KubernetesWorkers(
        resources=ComponentResources(accelerator_count=4, accelerator_type="google.com/tpu"),
        node_selector={
            "cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
            "cloud.google.com/gke-tpu-topology": "2x2",
        },
    )
    job = manifests.indexed_job(_pods(workers=1, settings=tpu))
    kubernetes_schemas.validate(job)
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"] == {"google.com/tpu": 4}
    assert pod["nodeSelector"]["cloud.google.com/gke-tpu-topology"] == "2x2"


def test_tf_config_per_index_matches_the_pod_hostnames():
    pods = _pods()
    for index in range(3):
        cluster = parse_tf_config(worker_cluster(pods.addresses(), index).to_json())
        assert cluster is not None
        assert cluster.task_index == index and cluster.is_chief == (index == 0)
        host = cluster.cluster["worker"][index].split(".")[0]
        assert host == f"{pods.name}-{index}"  # the Indexed Job pod's hostname


def test_config_reaches_the_trainer_settings_the_executor_reads():
    config = load_config(
        None,
        [
            "trainer.workers=2",
            "trainer.launcher=tfjob",
            "trainer.kubernetes.resources.accelerator_count=1",
            "trainer.kubernetes.node_selector={pool: gpu}",
        ],
    )
    trainer = next(
        c for c in definition.create_pipeline(config).components if c.id == definition.TRAINER
    )
    custom_config = json.loads(trainer.exec_properties["custom_config"])
    settings = settings_of(custom_config, 1000, 100)
    assert settings == config.trainer
    assert settings.workers == 2 and settings.launcher == TFJOB
    assert settings.kubernetes.resources.accelerator_count == 1
    assert settings.kubernetes.node_selector == {"pool": "gpu"}
    with pytest.raises(ConfigError, match=r"unknown key\(s\) trainer.gpus"):
        settings_of({"trainer": {"gpus": 1}}, 1000, 100)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_trainer_rbac_renders_and_validates():
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "kubernetes" / "trainer-rbac")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    objects = [o for o in yaml.safe_load_all(rendered) if o]
    for obj in objects:
        kubernetes_schemas.validate(obj)
    role = next(o for o in objects if o["kind"] == "Role")
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    needed = {
        ("batch", "jobs", "create"),
        ("batch", "jobs/status", "get"),
        ("kubeflow.org", "tfjobs/status", "get"),
        ("batch", "jobs", "get"),
        ("batch", "jobs", "delete"),
        ("", "services", "create"),
        ("", "services", "delete"),
        ("", "pods", "get"),
        ("", "pods", "list"),
        ("", "pods/log", "get"),
        ("kubeflow.org", "tfjobs", "create"),
        ("kubeflow.org", "tfjobs", "get"),
        ("kubeflow.org", "tfjobs", "delete"),
    }
    assert needed <= granted, f"missing: {sorted(needed - granted)}"
    binding = next(o for o in objects if o["kind"] == "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


# -- the launcher against the fake API ------------------------------------------------


@pytest.fixture
def fake():
    servers: list[FakeKubernetes] = []

    def start(**kwargs) -> FakeKubernetes:
        server = FakeKubernetes(**kwargs)
        server.add_pod(NAMESPACE, OWN_POD, OWN_IMAGE, "default-editor")
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


_RESOURCE_KEYS = {f.name for f in dataclasses.fields(ComponentResources)}


def _launcher(server: FakeKubernetes, launcher: str, workers: int = 2, **settings):
    configuration = k8s.Configuration(host=server.url)
    lines: list[str] = []
    resources = {k: settings.pop(k) for k in list(settings) if k in _RESOURCE_KEYS}
    config = TrainerSettings(
        workers=workers,
        launcher=launcher,
        max_restarts=1,
        kubernetes=KubernetesWorkers(**settings, resources=ComponentResources(**resources)),
    )
    return (
        KubernetesLauncher(
            config,
            api_client=k8s.ApiClient(configuration),
            own_pod_name=OWN_POD,
            own_namespace=NAMESPACE,
            poll_s=0.01,
            log=lines.append,
        ),
        lines,
    )


def _fn_args(run_dir: str | None = None):
    # ram:// stands for shared storage: the launcher refuses plain local paths.
    return fn_args_under("ram://pipeline_root", run_dir)


def test_indexed_job_runs_streams_logs_and_cleans_up(fake):
    server = fake(scripts=[WorkerScript(logs=["INFO trainer starts at step 0", "chief done"])])
    launcher, lines = _launcher(server, INDEXED_JOB)
    fn_args = _fn_args()
    launcher.run(fn_args, "components.training.run.run_fn")

    (service,) = server.created("services")
    (job,) = server.created("jobs")
    # The Service is owned by the Job, so it goes with the Job whatever happens.
    (owner,) = service["metadata"]["ownerReferences"]
    assert owner["kind"] == "Job" and owner["name"] == job["metadata"]["name"]
    assert owner["uid"] == f"uid-jobs-{job['metadata']['name']}"
    gpu_env = {e["name"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "TRAINER_EXPECTED_GPUS" not in gpu_env
    assert job["metadata"]["namespace"] == NAMESPACE
    pod = job["spec"]["template"]["spec"]
    # Image and service account come from the Trainer's own pod.
    assert pod["containers"][0]["image"] == OWN_IMAGE
    assert pod["serviceAccountName"] == "default-editor"
    assert job["spec"]["backoffLimit"] == 2  # max_restarts x workers
    command = pod["containers"][0]["command"]
    assert command[:3] == ["python", "-m", "components.training.worker"]
    assert command[command.index("--fn-args") + 1] == f"{fn_args.model_run_dir}/launch/fn_args.json"
    assert command[command.index("--run-fn") + 1] == "components.training.run.run_fn"

    assert "[worker 0] chief done" in lines
    assert "[worker 1] done" in lines
    assert any("not scheduled yet (Unschedulable" in line for line in lines)
    deleted = server.deleted()
    assert f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/{job['metadata']['name']}" in deleted
    assert f"/api/v1/namespaces/{NAMESPACE}/services/{service['metadata']['name']}" in deleted
    job_delete = next(r for r in server.requests if r.method == "DELETE" and "/jobs/" in r.path)
    assert (job_delete.body or {}).get(
        "propagationPolicy", job_delete.query.get("propagationPolicy")
    ) == "Background"
    # The FnArgs file the workers read is gone with the job.
    assert not tf.io.gfile.exists(f"{fn_args.model_run_dir}/launch")


def test_worker_failure_names_the_pod_reason_and_error(fake):
    server = fake(
        scripts=[
            WorkerScript(),
            WorkerScript(
                logs=[
                    "INFO trainer starts at step 0",
                    "Traceback (most recent call last):",
                    "tensorflow.python.framework.errors_impl.ResourceExhaustedError: OOM",
                ],
                exit_code=137,
                reason="OOMKilled",
            ),
        ]
    )
    launcher, _ = _launcher(server, INDEXED_JOB)
    with pytest.raises(WorkerFailedError) as e:
        launcher.run(_fn_args(), "components.training.run.run_fn")
    message = str(e.value)
    assert "indexed_job team-a/trainer-" in message
    assert "BackoffLimitExceeded" in message
    assert "worker 1 (pod trainer-" in message and "OOMKilled (exit code 137)" in message
    assert "ResourceExhaustedError: OOM" in message
    assert len([p for p in server.deleted() if "/jobs/" in p or "/services/" in p]) == 2


def test_tfjob_is_created_watched_and_deleted(fake):
    server = fake()
    launcher, lines = _launcher(
        server, TFJOB, workers=3, image="registry.example/other:1", service_account="trainer-sa"
    )
    launcher.run(_fn_args(), "components.training.run.run_fn")
    (tfjob,) = server.created("tfjobs")
    assert not server.created("services") and not server.created("jobs")
    worker = tfjob["spec"]["tfReplicaSpecs"]["Worker"]
    assert worker["replicas"] == 3
    assert worker["template"]["spec"]["containers"][0]["image"] == "registry.example/other:1"
    assert worker["template"]["spec"]["serviceAccountName"] == "trainer-sa"
    assert {f"[worker {i}] done" for i in range(3)} <= set(lines)
    assert any(p.endswith(f"/tfjobs/{tfjob['metadata']['name']}") for p in server.deleted())


def test_forbidden_names_the_rbac_to_apply(fake):
    server = fake(forbidden=("create services",))
    launcher, _ = _launcher(server, INDEXED_JOB)
    with pytest.raises(KubernetesLaunchError, match=r"403 Forbidden.*kubernetes/trainer-rbac"):
        launcher.run(_fn_args(), "components.training.run.run_fn")
    # The Job created before the refusal is deleted again.
    assert any("/jobs/" in p for p in server.deleted())


def test_local_pipeline_root_is_refused(fake):
    server = fake()
    launcher, _ = _launcher(server, INDEXED_JOB)
    with pytest.raises(KubernetesLaunchError, match="shared storage"):
        launcher.run(_fn_args("/tmp/pipeline_root/model_run/7"), "components.training.run.run_fn")
    assert not server.created("jobs")


def test_outside_a_pod_image_and_namespace_are_required(fake):
    server = fake()
    configuration = k8s.Configuration(host=server.url)
    launcher = KubernetesLauncher(
        TrainerSettings(workers=2, launcher=INDEXED_JOB),
        api_client=k8s.ApiClient(configuration),
        own_pod_name="",
        own_namespace="",
        poll_s=0.01,
    )
    with pytest.raises(KubernetesLaunchError, match=r"trainer\.kubernetes\.image"):
        launcher.run(_fn_args(), "components.training.run.run_fn")


def test_api_outages_are_retried(fake):
    server = fake(unavailable=3)
    launcher, lines = _launcher(server, INDEXED_JOB)
    launcher.run(_fn_args(), "components.training.run.run_fn")
    assert len([line for line in lines if "Kubernetes API error while watching" in line]) == 3
    assert any("succeeded" in line for line in lines)


def test_job_names_are_unique_per_attempt():
    names = {manifests.job_name("gs://b/root/trainer/model_run/7") for _ in range(5)}
    assert len(names) == 5
    assert all(len(f"{n}-99") <= 63 for n in names)


def test_gpu_workers_check_that_the_image_sees_their_gpus():
    container = manifests.indexed_job(_pods())["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "TRAINER_EXPECTED_GPUS", "value": "1"} in container["env"]

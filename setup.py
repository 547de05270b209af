"""Packaging for the MLOps pipeline: `pipeline` (DAG, config, runners, CLI),
`components` (custom TFX components and the libraries they share) and
`models` (model packages: the declarative one and the taxi default's label).

Exact versions live in requirements.lock; the ranges here say what the code is
written against, so the package can also be installed into a curated image.
"""

from setuptools import find_packages, setup

setup(
    name="mlops-pipeline",
    version="0.2.0",
    description="A TFX pipeline from your CSV to a model TF Serving serves, local and on Kubeflow",
    python_requires=">=3.10,<3.11",
    packages=find_packages(
        include=["pipeline", "pipeline.*", "components", "components.*", "models", "models.*"]
    ),
    package_data={
        "pipeline": ["configs/*.yaml", "configs/*.json"],
        "models": ["taxi/*.pbtxt"],
        "components": ["registry/tf_serving_ops.txt"],
    },
    install_requires=[
        "tfx[kfp]>=1.16,<1.17",
        "tensorflow>=2.16,<2.17",
        "tf-keras>=2.16,<2.17",
        "tensorflow-transform>=1.16,<1.17",
        "tensorflow-model-analysis>=0.47,<0.48",
        "tensorflow-data-validation>=1.16,<1.17",
        "ml-metadata>=1.16,<1.17",
        "tensorflow-serving-api>=2.16,<2.17",
        "apache-beam[gcp]>=2.59,<3",
        "dill>=0.3.8",
        "kfp>=2.5,<2.6",
        "protobuf>=3.20.3,<4",
        "PyYAML>=6.0",
        # `mlops completion bash|zsh`: static completion scripts.
        "shtab>=1.7",
        # s3:// for tf.io.gfile (TF 2.16 dropped its own).
        "tensorflow-io>=0.37,<0.38",
    ],
    extras_require={
        "dev": [
            "pytest>=8",
            "pytest-xdist>=3.8",
            "ruff>=0.6",
            "mypy>=1.10",
            "types-PyYAML",
            "matplotlib>=3.8",
            # kubernetes-validate (tests/kubernetes_schemas.py) is not here:
            # scripts/ensure_venv.sh installs it off sys.path.
            # protoc for the vendored TF Serving protos (protobuf 3.20-compatible line).
            "grpcio-tools>=1.48,<1.49",
            "nbclient>=0.10",
            "nbformat>=5.10",
            "ipykernel>=6",
            "palmerpenguins>=0.1.6",
            # moto's S3 server for the registry's object-store tests.
            "moto[s3]>=5.2",
            "flask>=3",
            "flask-cors>=6",
        ],
    },
    entry_points={"console_scripts": ["mlops=pipeline.__main__:run"]},
)

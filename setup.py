"""Installable package for the recommender stack; console script `recstack`."""

import pathlib

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent


def runtime_requirements() -> list[str]:
    """Pinned runtime requirements: requirements.txt up to its development block."""
    lines = (HERE / "requirements.txt").read_text().splitlines()
    block = lines[: next(i for i, line in enumerate(lines) if line.startswith("# --- dev"))]
    return [line.strip() for line in block if line.strip() and not line.startswith("#")]


setup(
    name="recstack",
    version="0.1.0",
    description="A production recommender stack on TensorFlow Recommenders",
    python_requires=">=3.11,<3.12",
    packages=find_packages(
        include=["recstack*", "beam_jobs*", "trainer*", "serving*", "pipeline*", "evaluation*"]
    ),
    install_requires=runtime_requirements(),
    # `recstack pipeline submit` (Vertex AI Pipelines); compiling needs neither.
    extras_require={
        "vertex": [
            "google-cloud-aiplatform==1.165.1",
            "google-cloud-pipeline-components==2.22.0",
        ]
    },
    entry_points={"console_scripts": ["recstack=recstack.cli:main"]},
)

"""`recstack pipeline run|compile|submit` and `recstack tensorboard` from the command line."""

import sys

import pytest
import yaml

from pipeline.vertex import load_compiled
from recstack.cli import main

VERTEX = {
    "pipeline": {"name": "recs", "root": "/gcs/b/r", "interactions": "gs://b/i.jsonl",
                 "items": "gs://b/items.jsonl", "serving_model_dir": "/gcs/b/models"},
    "vertex": {"project": "p", "pipeline_root": "gs://b/v", "image": "gcr.io/p/recstack:1",
               "trainer": {"machine_type": "cloud-tpu", "accelerator_type": "TPU_V3",
                           "accelerator_count": 8}},
}  # fmt: skip


def test_compile_writes_a_spec_kfp_loads(tmp_path, capsys):
    config, output = tmp_path / "vertex.yaml", tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(VERTEX))
    main(["pipeline", "compile", "--config", str(config), "--output", str(output)])
    assert f"compiled {output}" in capsys.readouterr().out
    load_compiled(str(output))
    spec = yaml.safe_load(output.read_text())
    pools = spec["components"]["comp-trainer"]["inputDefinitions"]["parameters"]
    machine = pools["worker_pool_specs"]["defaultValue"][0]["machine_spec"]
    assert machine["machine_type"] == "cloud-tpu" and machine["accelerator_type"] == "TPU_V3"


def test_set_overrides_the_file(tmp_path):
    config, output = tmp_path / "vertex.yaml", tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(VERTEX))
    main(["pipeline", "compile", "--config", str(config), "--output", str(output),
          "--set", "train.epochs=11"])  # fmt: skip
    assert '"epochs": 11' in output.read_text()


def test_run_without_inputs_names_the_missing_settings(tmp_path):
    config = tmp_path / "empty.yaml"
    config.write_text(yaml.safe_dump({"pipeline": {"root": str(tmp_path / "root")}}))
    with pytest.raises(ValueError, match="pipeline.interactions.*pipeline.items"):
        main(["pipeline", "run", "--config", str(config)])


def test_an_unknown_section_fails_before_anything_runs(tmp_path):
    config = tmp_path / "typo.yaml"
    config.write_text(yaml.safe_dump({**VERTEX, "trian": {"epochs": 1}}))
    with pytest.raises(ValueError, match="unknown section.*trian"):
        main(["pipeline", "compile", "--config", str(config)])


def test_submit_without_the_vertex_extra_says_how_to_install_it(tmp_path, monkeypatch):
    config = tmp_path / "vertex.yaml"
    config.write_text(yaml.safe_dump(VERTEX))
    monkeypatch.setitem(sys.modules, "google.cloud.aiplatform", None)  # Not installed.
    with pytest.raises(ImportError, match=r"recstack\[vertex\]"):
        main(["pipeline", "submit", "--config", str(config),
              "--output", str(tmp_path / "p.yaml")])  # fmt: skip
    assert (tmp_path / "p.yaml").exists()  # Compiled before submitting.


def test_tensorboard_needs_a_run_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        main(["tensorboard", "--run-dir", str(tmp_path / "missing"), "--port", "0"])

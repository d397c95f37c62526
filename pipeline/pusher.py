"""Pusher: copies a blessed model's SavedModels to the serving base path as the next version.

Each model (`retrieval`, `ranking`, `recommender`) is copied to a temporary directory beside
its final place, its `recstack_metadata.json` gets the new version number and the model's
lineage, and only then is it renamed to `<serving_model_dir>/<model>/<N+1>/`, so a polling
`recstack serve` (or TF Serving) never sees half a version. All models get the same N+1: one
more than the highest version any of them has.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from pipeline.artifacts import SERVING_SUBDIR
from recstack import features as F
from recstack import fs

log = logging.getLogger(__name__)

#: Lineage record written into every pushed version directory.
LINEAGE_FILE = "recstack_lineage.json"


def exported_versions(model_uri: str) -> dict[str, str]:
    """`{model name: newest exported version dir}` of a Trainer artifact.

    Raises:
      FileNotFoundError: the artifact exported no model.
    """
    found = {}
    for name in F.SERVED_MODELS:
        base = os.path.join(model_uri, SERVING_SUBDIR, name)
        versions = fs.versions(base)
        if versions:
            found[name] = os.path.join(base, str(versions[-1]))
    if not found:
        raise FileNotFoundError(f"{model_uri} holds no exported model under {SERVING_SUBDIR}/")
    return found


def push(model_uri: str, serving_model_dir: str, lineage: dict[str, Any]) -> dict[str, Any]:
    """Pushes every exported model of the Trainer artifact `model_uri` as the next version.

    Args:
      model_uri: Trainer artifact (its `serving/<model>/<v>` directories are copied).
      serving_model_dir: Base path served by `recstack serve` / TF Serving.
      lineage: What produced the model (run, data fingerprint, config, code version,
        evaluation); stored in each version directory as `recstack_lineage.json`.

    Returns:
      `{"version": N, "models": {name: pushed version dir}}`.
    """
    sources = exported_versions(model_uri)
    version = max(fs.next_version(os.path.join(serving_model_dir, n)) for n in sources)
    staged = {}
    for name, source in sources.items():
        staging = os.path.join(
            serving_model_dir, name, f".tmp-push-{version}-{os.getpid()}-{int(time.time())}"
        )
        fs.copy_tree(source, staging)
        metadata_path = os.path.join(staging, F.EXPORT_METADATA_FILE)
        if fs.exists(metadata_path):
            metadata = fs.read_json(metadata_path)
            fs.write_json(metadata_path, {**metadata, "version": version, "pushed_from": source})
        fs.write_json(os.path.join(staging, LINEAGE_FILE),
                      {**lineage, "version": version, "model": name})  # fmt: skip
        staged[name] = staging
    pushed = {}
    for name, staging in staged.items():
        pushed[name] = os.path.join(serving_model_dir, name, str(version))
        fs.rename(staging, pushed[name])
        log.info("pushed %s", pushed[name])
    return {"version": version, "models": pushed}

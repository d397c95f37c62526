"""Warm starting a model from a finished run: continuous training on grown vocabularies.

A new pipeline run (one more day of logs: new users, new items) initialises its model from the
last blessed run instead of from scratch. Variables are matched by their object-graph
checkpoint keys (`model/query_model/projection/kernel/.ATTRIBUTES/VARIABLE_VALUE`), which do
not depend on Keras' per-process name suffixes (`embedding_1`). Id-keyed tables (every
`IdEmbedding`, the category embedding) are remapped row by row through the vocabularies the
base run was trained with, which `save_id_tables` writes to `RUN_DIR/vocab/tables.json`.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os

import numpy as np
import tensorflow as tf
import tf_keras

from trainer import files
from trainer.id_embedding import IdEmbedding
from trainer.model import RecommenderModel
from trainer.towers import CandidateTower

log = logging.getLogger(__name__)

VOCAB_DIR = "vocab"
TABLES_FILE = "tables.json"
#: Suffix of a variable's key in an object-based checkpoint.
VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
#: Leading rows of the category embedding: the padding ("") and the unknown-category row.
CATEGORY_FIXED_ROWS = 2


@dataclasses.dataclass(frozen=True)
class IdTable:
    """An embedding table whose rows belong to ids: `fixed_rows` leading rows (OOV buckets,
    padding), then one row per id of `ids` (row `fixed_rows + i` is `ids[i]`)."""

    name: str
    fixed_rows: int
    ids: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class TableRemap:
    """How one id table was carried over: `kept` ids in both vocabularies got their old row,
    `new` ids kept their fresh initialisation, `dropped` base ids are gone, `fixed_rows`
    (OOV/padding rows) were copied."""

    kept: int
    new: int
    dropped: int
    fixed_rows: int


@dataclasses.dataclass(frozen=True)
class WarmStartReport:
    """What `warm_start` copied.

    Attributes:
      base_checkpoint: Path prefix of the base run's checkpoint.
      tables: Id tables by name (`user_id`, `item_id`, `categories`) -> their `TableRemap`.
      dense_variables: Variables copied unchanged (towers' dense layers, ranker, text tower).
      rebuilt: Keys of per-catalog tables left as built from the new catalog (frozen text).
    """

    base_checkpoint: str
    tables: dict[str, TableRemap]
    dense_variables: int
    rebuilt: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """JSON-serialisable form (what `train` writes to `warm_start.json`)."""
        return {
            "base_checkpoint": self.base_checkpoint,
            "tables": {name: dataclasses.asdict(r) for name, r in self.tables.items()},
            "dense_variables": self.dense_variables,
            "rebuilt": list(self.rebuilt),
        }


@dataclasses.dataclass(frozen=True)
class _Graph:
    """The model's variables by checkpoint key, split by how warm starting treats them."""

    variables: dict[str, tf.Variable]  # Weights to carry (optimizer and metrics excluded).
    tables: dict[str, IdTable]  # Keys of `variables` that are id tables.
    rebuilt: frozenset[str]  # Keys of `variables` rebuilt from the catalog.
    skipped: tuple[str, ...]  # Key prefixes of the optimizer and the metrics.


def _escape(name: str) -> str:
    # What tf.train.Checkpoint does to a local name before joining the path with "/".
    return name.replace(".", "..").replace("/", ".S")


def _checkpoint_paths(
    model: RecommenderModel,
) -> tuple[dict[str, tf.Variable], list[str], list[tf_keras.layers.Layer]]:
    """Breadth-first over the object graph of `tf.train.Checkpoint(model=model)` (the root
    `CheckpointEachEpoch` saves), as the checkpoint does, so each variable gets the key under
    which the checkpoint stores it (the first, shortest path: the shared item embedding is
    `model/item_embedding`, not a tower's path). Returns `(variables by key, key prefixes of
    the optimizer and the metrics, the id-table layers met)`."""
    root = tf.train.Checkpoint(model=model)
    seen, queue = {id(root)}, collections.deque([("", root)])
    variables, skipped, layers = {}, [], []
    kept_alive = [root]  # Keeps ids unique while the walk runs.
    while queue:
        path, node = queue.popleft()
        for name, child in tf.train.TrackableView.children(node).items():
            if id(child) in seen:
                continue
            seen.add(id(child))
            kept_alive.append(child)
            child_path = f"{path}/{_escape(name)}" if path else _escape(name)
            if child is model.optimizer or isinstance(child, tf_keras.metrics.Metric):
                skipped.append(child_path + "/")  # Fresh optimizer and metric state.
            elif isinstance(child, tf.Variable):
                variables[child_path + VALUE_SUFFIX] = child
            else:
                queue.append((child_path, child))
                if isinstance(child, IdEmbedding | CandidateTower):
                    layers.append(child)
    return variables, skipped, layers


def _walk(model: RecommenderModel) -> _Graph:
    """The built model's variables by checkpoint key, its id tables and rebuilt tables."""
    if not model.built:
        raise ValueError("call the model on a batch (building its variables) first")
    variables, skipped, layers = _checkpoint_paths(model)
    tables, rebuilt = {}, set()
    by_variable = {id(v): key for key, v in variables.items()}
    for layer in layers:
        if isinstance(layer, IdEmbedding):
            table = IdTable(layer.name, layer.num_oov_buckets, tuple(layer.vocabulary))
            tables[by_variable[id(layer.embedding.embeddings)]] = table
        elif isinstance(layer, CandidateTower):
            if layer.categories is not None:
                ids = tuple(str(c) for c in layer.category_lookup.get_vocabulary())
                key = by_variable[id(layer.categories.embeddings)]
                tables[key] = IdTable("categories", CATEGORY_FIXED_ROWS, ids[CATEGORY_FIXED_ROWS:])
            if layer.text_vectors is not None:
                rebuilt.add(by_variable[id(layer.text_vectors)])
    names = collections.Counter(t.name for t in tables.values())
    tables = {  # Two tables of one name (e.g. a second user_id embedding) go by their key.
        key: t if names[t.name] == 1 else dataclasses.replace(t, name=key[: -len(VALUE_SUFFIX)])
        for key, t in tables.items()
    }
    return _Graph(variables, tables, frozenset(rebuilt), tuple(skipped))


def save_id_tables(model: RecommenderModel, run_dir: str) -> str:
    """Writes the vocabularies of the (built) model's id tables to `run_dir/vocab/tables.json`
    (`{checkpoint key: {name, fixed_rows, ids}}`), so a later run can warm-start from this one
    without its data directory. Returns the path."""
    tables = _walk(model).tables
    path = os.path.join(files.ensure_dir(os.path.join(run_dir, VOCAB_DIR)), TABLES_FILE)
    files.write_json(path, {key: dataclasses.asdict(t) for key, t in tables.items()})
    return path


def _base_tables(base_run_dir: str, wanted: dict[str, IdTable]) -> dict[str, IdTable]:
    """The base run's id tables: from `vocab/tables.json`, or, for runs that predate it, rebuilt
    from the vocabularies and catalog of the base run's data directory."""
    path = os.path.join(base_run_dir, VOCAB_DIR, TABLES_FILE)
    if tf.io.gfile.exists(path):
        saved = files.read_json(path)
        return {
            key: IdTable(t["name"], t["fixed_rows"], tuple(t["ids"])) for key, t in saved.items()
        }
    from recstack import features as F
    from trainer import data
    from trainer.catalog import read_catalog
    from trainer.train import load_run_config

    config, data_dir = load_run_config(base_run_dir)
    layout = F.DataLayout(data_dir)
    if not tf.io.gfile.exists(layout.item_vocab):
        raise FileNotFoundError(
            f"the base run {base_run_dir} has no {VOCAB_DIR}/{TABLES_FILE} and its data directory "
            f"{data_dir} is gone; restore that directory or train from scratch"
        )
    catalog = read_catalog(layout)
    items = list(data.read_vocabulary(layout.item_vocab).tokens)
    seen = set(items)  # As RecommenderModel orders them: trained items, then catalog-only.
    items += [item for item in catalog.ids.tolist() if item not in seen]
    oov = config.num_oov_buckets
    known = {
        "user_id": IdTable("user_id", oov, data.read_vocabulary(layout.user_vocab).tokens),
        "item_id": IdTable("item_id", oov, tuple(items)),
        "categories": IdTable("categories", CATEGORY_FIXED_ROWS, catalog.category_vocabulary),
    }
    unknown = sorted(t.name for t in wanted.values() if t.name not in known)
    if unknown:
        raise ValueError(
            f"the base run {base_run_dir} predates {VOCAB_DIR}/{TABLES_FILE}, so the ids of "
            f"tables {unknown} are unknown; train from scratch"
        )
    return {key: known[t.name] for key, t in wanted.items()}


def _remap(
    key: str, old_values: np.ndarray, old: IdTable, fresh: np.ndarray, new: IdTable
) -> tuple[np.ndarray, TableRemap]:
    """`fresh` (`[new.fixed_rows + len(new.ids), dim]`) with the fixed rows and every shared
    id's row taken from `old_values`. Returns `(values, TableRemap)`."""
    if old_values.shape[1:] != fresh.shape[1:] or old.fixed_rows != new.fixed_rows:
        raise ValueError(
            f"cannot warm-start {key}: the base has shape {list(old_values.shape)} with "
            f"{old.fixed_rows} OOV/padding rows, this model {list(fresh.shape)} with "
            f"{new.fixed_rows}; use the base run's config (embedding_dim, num_oov_buckets) or "
            "train from scratch"
        )
    if old_values.shape[0] != old.fixed_rows + len(old.ids):
        raise ValueError(
            f"{key}: the base run's vocabulary has {len(old.ids)} ids (+{old.fixed_rows} fixed "
            f"rows) but its checkpoint {old_values.shape[0]} rows; the run's vocab/ does not "
            "belong to its checkpoint"
        )
    old_row = {token: i for i, token in enumerate(old.ids)}
    pairs = [(i, old_row[t]) for i, t in enumerate(new.ids) if t in old_row]
    values = fresh.copy()
    values[: new.fixed_rows] = old_values[: old.fixed_rows]
    if pairs:
        rows = np.asarray(pairs, dtype=np.int64) + new.fixed_rows
        values[rows[:, 0]] = old_values[rows[:, 1]]
    kept = len(pairs)
    return values, TableRemap(kept, len(new.ids) - kept, len(old.ids) - kept, new.fixed_rows)


def _check_same_variables(graph: _Graph, base_keys: set[str], checkpoint: str) -> None:
    ours = set(graph.variables)
    base_keys = {  # The model's weights: not the checkpoint's own counter, nor optimizer slots.
        k for k in base_keys if k.startswith("model/") and "/.OPTIMIZER_SLOT/" not in k
    }
    missing = sorted(ours - base_keys)
    extra = sorted(k for k in base_keys - ours if not k.startswith(graph.skipped))
    if missing or extra:
        raise ValueError(
            f"cannot warm-start from {checkpoint}: it lacks {len(missing)} variables of this "
            f"model (e.g. {missing[:3]}) and has {len(extra)} this model lacks (e.g. "
            f"{extra[:3]}); the architecture differs: use the base run's config or train from "
            "scratch"
        )


def warm_start(
    model: RecommenderModel, base_run_dir: str, checkpoint_dir: str = ""
) -> WarmStartReport:
    """Initialises the built `model` from the latest checkpoint of the run `base_run_dir`.

    - Id tables (user ids, item ids, categories; any `IdEmbedding`): the OOV/padding rows are
      copied, each id in both vocabularies gets its base row (ids may have moved: vocabularies
      are frequency-ordered), new ids keep their fresh initialisation.
    - Frozen text vectors (`[catalog + 1, t]`, rebuilt from the new catalog): left as built.
    - Every other variable (dense layers, context embeddings, ranker, BERT text tower) is copied.
    - The optimizer's state (Adam moments, step count) and metric states are not carried: the
      run starts with a fresh optimizer.

    Call it after the model's variables are built (one call on a batch), inside the
    distribution strategy's scope.

    Args:
      model: The new model, built for the new vocabularies and catalog.
      base_run_dir: Run directory of the base run (`run_config.json`, `vocab/`).
      checkpoint_dir: The base run's checkpoint directory when not the run dir (`RunPaths`).

    Returns:
      The `WarmStartReport`.

    Raises:
      FileNotFoundError: the base run has no checkpoint, or no vocabularies.
      ValueError: the base's variables differ from the model's (another embedding_dim or
        architecture); the message names the variable, both shapes and the fix.
    """
    from trainer.train import RunPaths  # train imports this module.

    directory = RunPaths(base_run_dir, checkpoint_dir).checkpoints
    checkpoint = tf.train.latest_checkpoint(directory)
    if checkpoint is None:
        raise FileNotFoundError(f"no checkpoint in {directory} to warm-start from")
    reader = tf.train.load_checkpoint(checkpoint)
    graph = _walk(model)
    _check_same_variables(graph, set(reader.get_variable_to_shape_map()), checkpoint)
    base_tables = _base_tables(base_run_dir, graph.tables)
    tables, dense = {}, 0
    for key, variable in graph.variables.items():
        if key in graph.rebuilt:
            continue
        old_values = reader.get_tensor(key)
        if key in graph.tables:
            table = graph.tables[key]
            values, tables[table.name] = _remap(
                key, old_values, base_tables[key], variable.numpy(), table
            )
            variable.assign(values)
            continue
        if tuple(old_values.shape) != tuple(variable.shape):
            raise ValueError(
                f"cannot warm-start {key}: the base checkpoint {checkpoint} has shape "
                f"{list(old_values.shape)}, this model {variable.shape.as_list()}; warm starting "
                "needs the base run's config (embedding_dim, towers, ranker); use it or train "
                "from scratch"
            )
        variable.assign(old_values)
        dense += 1
    report = WarmStartReport(checkpoint, tables, dense, tuple(sorted(graph.rebuilt)))
    log.info("warm-started from %s: %s", checkpoint, report.to_dict())
    return report

"""StatisticsGen's TensorBoard view: the statistics `pipeline.statistics` computes, as
scalars (split sizes, ingest's counts) and one markdown feature table per split (Text tab).
"""

from __future__ import annotations

from typing import Any

from recstack import features as F

#: stats.json numbers shown as TensorBoard scalars under "ingest/".
SUMMARY_INGEST_KEYS = (
    F.STAT_ITEM_GINI, F.STAT_DISTINCT_USERS, F.STAT_DISTINCT_ITEMS, F.STAT_CATALOG_ITEMS,
    F.STAT_SPARSITY, F.STAT_COLD_ITEM_SHARE, F.STAT_ROWS_IN, F.STAT_DEAD_LETTERS,
)  # fmt: skip


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def feature_table(split_stats: dict[str, Any], max_top_values: int = 5) -> str:
    """Returns a markdown table of one split's features (kind, presence, value counts, numeric
    range, distinct strings and the `max_top_values` most frequent)."""
    lines = [
        "| feature | kind | present | values | min | max | mean | std | unique | top values |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    num_examples = max(split_stats["num_examples"], 1)
    for name, s in split_stats["features"].items():
        numeric, strings = s.get("numeric", {}), s.get("bytes", {})
        kinds = "/".join(s["kinds"]) if len(s["kinds"]) > 1 else s["kind"]
        top = ", ".join(f"{t['value'][:24]} ({t['count']})" for t in
                        strings.get("top_values", [])[:max_top_values])  # fmt: skip
        cells = [name, kinds, f"{s['num_present'] / num_examples:.1%}",
                 f"{s['min_num_values']}-{s['max_num_values']}",
                 *(_number(numeric.get(k)) for k in ("min", "max", "mean", "std")),
                 str(strings.get("num_unique", "")), top.replace("|", "\\|")]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_statistics_summaries(stats: dict[str, Any], logdir: str) -> None:
    """Writes the statistics as TensorBoard summaries at step 0 under `logdir`.

    Scalars `statistics/num_examples/<split>`, `ingest/dead_letter_share` (dead letters /
    rows read) and `ingest/<key>` for the `SUMMARY_INGEST_KEYS` in stats.json; one markdown
    text table per split, `statistics/features/<split>` (the Text tab).

    Args:
      stats: The dict `compute_statistics` returns (or statistics.json).
      logdir: TensorBoard log directory (local or `gs://`).
    """
    import tensorflow as tf

    ingest = stats.get("ingest", {})
    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default():
        for split, split_stats in stats["splits"].items():
            tf.summary.scalar(f"statistics/num_examples/{split}", split_stats["num_examples"], 0)
            tf.summary.text(f"statistics/features/{split}", feature_table(split_stats), 0)
        if ingest.get(F.STAT_ROWS_IN):
            share = ingest.get(F.STAT_DEAD_LETTERS, 0) / ingest[F.STAT_ROWS_IN]
            tf.summary.scalar("ingest/dead_letter_share", share, 0)
        for key in SUMMARY_INGEST_KEYS:
            if isinstance(ingest.get(key), int | float):
                tf.summary.scalar(f"ingest/{key}", ingest[key], 0)
    writer.close()

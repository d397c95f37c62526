"""TensorBoard summaries of the Evaluator: metrics of the candidate, the blessed model and the
popularity baseline as scalars, and the blessing decision as a scalar and a text report."""

from __future__ import annotations

import tensorflow as tf


def write_evaluation_summaries(result: dict, logdir: str, step: int = 0) -> None:
    """Writes an `evaluate_models` result under `logdir`.

    Scalars `evaluation/<who>/<metric>` for who in candidate, blessed_model, popularity;
    `blessing/blessed` (1 or 0); text `blessing/decision` (the checks, one per line).
    """
    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default(step=step):
        for who in ("candidate", "blessed_model", "popularity"):
            for name, value in (result.get(who) or {}).items():
                tf.summary.scalar(f"evaluation/{who}/{name}", value)
        tf.summary.scalar("blessing/blessed", 1.0 if result["blessed"] else 0.0)
        verdict = "**BLESSED**" if result["blessed"] else "**NOT BLESSED**"
        lines = [f"{verdict} on {result['metric']} ({result['eval_users']} eval users)", ""]
        lines += [f"- {reason}" for reason in result["reasons"]]
        tf.summary.text("blessing/decision", "\n".join(lines))
    writer.close()

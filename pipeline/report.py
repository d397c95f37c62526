"""A readable summary of a pipeline run: each stage's fate, the evaluation, the push."""

from __future__ import annotations

import os

from pipeline.local_runner import RunResult


def _stage_line(stage: str, info: dict) -> str:
    if info.get("cached"):
        fate = "cached (inputs, config and code unchanged)"
    elif info.get("ran"):
        fate = f"ran ({info['seconds']:.0f} s)" if info.get("seconds") else "ran"
    else:
        fate = "skipped"
    return f"  {stage:<17} {fate}"


def format_evaluation(evaluation: dict) -> list[str]:
    """Lines comparing the candidate with the blessed model and popularity, per metric."""
    blessed = evaluation.get("blessed_model") or {}
    lines = [f"  {'metric':<15} {'candidate':>9} {'blessed':>9} {'popularity':>10}"]
    for name, value in evaluation["candidate"].items():
        old = f"{blessed[name]:9.4f}" if name in blessed else f"{'-':>9}"
        lines.append(f"  {name:<15} {value:9.4f} {old} {evaluation['popularity'][name]:10.4f}")
    verdict = "BLESSED" if evaluation["blessed"] else "NOT BLESSED"
    lines.append(f"  {verdict} on {evaluation['metric']}:")
    lines += [f"    {reason}" for reason in evaluation["reasons"]]
    return lines


def format_run(result: RunResult) -> str:
    """The run summary printed by `recstack pipeline run`."""
    manifest = result.manifest
    lines = [f"pipeline run {result.run_id}: {manifest['status']}"]
    lines += [_stage_line(stage, info) for stage, info in manifest["stages"].items()]
    if result.evaluation:
        lines.append("evaluation on the eval split (whole catalog, training items excluded):")
        lines += format_evaluation(result.evaluation)
    pushed = manifest.get("pushed")
    if pushed and pushed.get("already_pushed"):
        lines.append(
            f"nothing new to push: the model already serves as version {pushed['version']}"
        )
    elif pushed:
        lines.append(f"pushed version {pushed['version']} to {manifest['serving_model_dir']}")
    else:
        lines.append("nothing pushed")
    lines.append(f"manifest: {os.path.join(result.run_dir, 'manifest.json')}")
    lines.append(f"TensorBoard: recstack tensorboard --run-dir {result.run_dir}")
    return "\n".join(lines)

"""A grid cell's plan on its target: the one plan a train cell's stage, launcher, ``bench plan
--grid``, ``bench grid show`` and SLURM request read (trainers.planner.plan_for over the cell's
resolved config), and an eval cell's GPUs (its vLLM tensor-parallel size)."""

from __future__ import annotations

from typing import Any

from harness.errors import BenchError

__all__ = ["cell_config", "cell_plan", "eval_gpus"]


def cell_config(cell, target: str) -> Any:
    """A train cell's resolved config object on ``target`` (what its stage will be given)."""
    from trainers import build_config

    fields = {k: v for k, v in cell.resolved.items() if k not in ("model", "parent", "output_dir")}
    return build_config(cell.method, {**fields, "target": target})


def cell_plan(cell, target: str):
    """The plan of a train cell on ``target``; a model without the facts to plan it is one line."""
    from harness.zoo import planner_facts
    from trainers.planner import plan_for

    try:
        return plan_for(cell_config(cell, target), planner_facts(cell.model), target)
    except BenchError as e:  # the planner's one line, said of this cell
        raise BenchError(f"{cell.cell_id}: {str(e).splitlines()[0]}") from None


def eval_gpus(cell, target: str) -> int:
    """GPUs of an eval cell: what its weights need (trainers.planner.serving_gpus), which is
    also the vLLM tensor-parallel size the eval runs with (harness/evaluate.py)."""
    from harness.zoo import planner_facts
    from trainers.planner import serving_gpus

    return serving_gpus(planner_facts(cell.model), target)

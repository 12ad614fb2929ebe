"""Executors that run a planned grid somewhere else than this process.

The local executor is :func:`harness.executors.local.run_local`; :mod:`harness.executors.slurm`
submits the same cells as SLURM job arrays. Each executor calls
:func:`harness.runner.run_cell` once per cell and returns cell key -> outcome.
"""

__all__: list[str] = []

"""Training the report's network: the loops (``train``), their configuration, divergence
rules, checkpoints, metrics, run folders, several processes, and pictures of a run.

Modules: ``train`` (compiled chunks, seeds, evaluation), ``config`` (``TrainConfig``),
``health`` (divergence), ``checkpoint`` and ``outputs`` (what a run writes),
``rundir``, ``runlock``, ``fsio`` (the run folder), ``distributed`` (several processes),
``xla_options`` (compiler options), ``plots`` (PNG pictures of a run).
"""

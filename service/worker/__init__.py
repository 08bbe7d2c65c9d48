"""The worker: claims work rows under a lease and reconciles each through ``service.enforcement`` (``loop``),
with the periodic sweeps (``sweeping``) and history prune (``pruning``) of one worker per process."""

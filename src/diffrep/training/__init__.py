"""Training shared by diffrep's trainers (the tiny prior, and the networks methods learn): a loop
of AdamW steps on a loss a trainer supplies, an EMA of the weights, checkpoints that resume
bit-for-bit, previews. It sits above ``priors`` and ``samplers`` and may import both; nothing
under ``priors`` imports it. How to add a trainer: docs/training.md.

>>> from diffrep.training import LoopConfig, Task, fit
>>> fitted = fit(Task(model, loss, batches), LoopConfig(out=Path("runs/x"), steps=1000), callback=print)
"""

from diffrep.lazy import lazy_exports

__all__ = [
    "LoopConfig", "Task", "Fitted", "fit", "train_step", "check_loop_config", "resolve_device", "seeded", "subconfig",
    "ema_update", "ema_decay_at", "TrainState", "save_checkpoint", "load_checkpoint", "sample_grid",
]

# Imported on first use (PEP 562): the command line reads ``training.config`` without torch.
__getattr__ = lazy_exports(__name__, {
    "diffrep.training.checkpoint": ("TrainState", "load_checkpoint", "save_checkpoint"),
    "diffrep.training.loop": ("Fitted", "LoopConfig", "Task", "check_loop_config", "ema_decay_at", "ema_update", "fit",
                              "resolve_device", "seeded", "subconfig", "train_step"),
    "diffrep.training.preview": ("sample_grid",),
})

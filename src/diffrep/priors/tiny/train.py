"""Compatibility path for ``diffrep.cli``: training moved to ``diffrep.training.tiny`` (the run)
and ``diffrep.priors.tiny.loss`` (its ε-loss). This re-export is the one upward import under
``priors/`` (tests/test_training.py allows exactly it); delete it once ``cli.py`` imports
``from diffrep.training.tiny import TrainConfig, check_config, train``."""

from diffrep.training.tiny import TrainConfig, check_config, train

__all__ = ["TrainConfig", "check_config", "train"]

"""The options of a tiny-prior training run, in a module without torch (the command line is built from them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of a tiny-prior training run."""

    out: Path  # run directory: checkpoints, sample grids, final tiny.safetensors + tiny.json
    res: int = 32  # image side, 32 or 64
    steps: int = 20_000  # total optimiser steps (the shipped weights: 11,000 + 6,000 + 1,500 + 8,000 in four runs, TRAINING.md)
    batch: int = 32  # images per step
    lr: float = 4e-4  # AdamW learning rate (constant)
    ema_decay: float = 0.999  # EMA of the weights used for sampling and export
    checkpoint_every: int = 1000  # steps between checkpoints (0: only at the end)
    sample_every: int = 2000  # steps between sample grids (0: never)
    data_n: int = 20_000  # toy-world images generated (held-out combos are then dropped)
    seed: int = 0  # seed of the data set, the captions, timesteps, noise and initial weights
    device: str = "auto"  # "auto" (CUDA when present), "cpu" or "cuda"
    channels: int = 32  # U-Net width at full resolution (32: 1.53 M parameters)
    cross_attention: bool = False  # attend to the prompt's token states at 16² and 8² (UNetConfig; experimental)
    scale_shift: bool = False  # the embedding also scales and shifts normalised features (UNetConfig, ADM's AdaGN)
    scale_shift_res: int = 0  # ... only in blocks whose feature map is at most this side (16, 8; 0: every block)
    label_loss: float = 0.0  # weight of the auxiliary loss: the text features name the caption's labels (see docs)
    p2_gamma: float = 0.0  # P2 weighting of the ε-loss, 1 / (1 + SNR(t))^gamma (Choi et al. 2022); 0: plain
    exact_target: bool = False  # regress on the training set's exact posterior-mean ε instead of the drawn ε (see eps_loss)
    focus_t: tuple[int, int] = (300, 800)  # noise steps [lo, hi) where the layout (the view) is decided ...
    focus_p: float = 0.0  # ... and the fraction of each batch whose t is drawn there instead of from all steps
    init: Path | None = None  # start from these tiny.safetensors weights (fine-tuning); new layers keep their init
    sample_steps: int = 50  # DDIM steps of the sample grids
    half: bool = False  # export the EMA weights in float16 (half the file; loaded back as float32)


@dataclass(frozen=True)
class CorrectiveTrainConfig:
    """Hyperparameters of a corrective (LMC-SDS's b̂) training run: L_k on the prior's clean data images."""

    out: Path  # run directory: checkpoints, final corrective.safetensors + corrective.json
    prior: str = "toyworld"  # the prior (default options) whose one-step denoiser b̂ learns: toyworld, tiny, gmm, gaussian
    steps: int = 5000  # total optimiser steps
    batch: int = 32  # clean images per step, each at its own t ~ U{0..T-1}
    lr: float = 1e-3  # AdamW learning rate (constant)
    ema_decay: float = 0.999  # EMA of the weights that is exported
    checkpoint_every: int = 500  # steps between checkpoints (0: only at the end)
    sample_every: int = 0  # kept at 0: a corrective has no previews (the shared loop's option)
    data_n: int = 10_000  # clean images drawn from a prior with an exact sampler (gmm, gaussian), or tiny's toy-world images
    channels: int = 32  # filters at full resolution, doubling per level (the paper: 32)
    levels: int = 4  # encoder levels (the paper: 4)
    seed: int = 0  # seed of the data draw, timesteps, noise and initial weights
    device: str = "auto"  # "auto" (CUDA when present), "cpu" or "cuda"

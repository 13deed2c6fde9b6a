"""Metrics of the evaluation protocol (design §9): fidelity, nearest data, labels, diversity."""

from __future__ import annotations

import torch
from torch import Tensor


def psnr(x: Tensor, y: Tensor) -> Tensor:
    """Per-image PSNR in dB of ``[N, C, H, W]`` images in [-1, 1] (data range 2)."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    return peak_signal_noise_ratio(x.clamp(-1, 1), y.clamp(-1, 1), data_range=2.0, reduction="none",
                                   dim=(1, 2, 3))


def ssim(x: Tensor, y: Tensor) -> Tensor:
    """Per-image SSIM (Gaussian window 11, σ 1.5) of ``[N, C, H, W]`` images in [-1, 1]."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    return structural_similarity_index_measure(x.clamp(-1, 1), y.clamp(-1, 1), data_range=2.0, reduction="none")


def nearest_data(images: Tensor, data: Tensor, chunk: int = 4096) -> tuple[Tensor, Tensor]:
    """Index ``[N]`` of the nearest data image (L2) and the RMS distance to it ``[N]``."""
    x = images.flatten(1).float()
    best_d = torch.full((x.shape[0],), float("inf"))
    best_i = torch.zeros(x.shape[0], dtype=torch.long)
    for start in range(0, data.shape[0], chunk):
        d = torch.cdist(x, data[start:start + chunk].flatten(1).float())
        val, idx = d.min(1)
        better = val < best_d
        best_d[better], best_i[better] = val[better], idx[better] + start
    return best_i, best_d / x.shape[1] ** 0.5


def nearest_iou(masks: Tensor, references: Tensor) -> Tensor:
    """Index ``[N]`` of the reference mask overlapping each mask most: IoU of ``masks [N, D]`` with
    ``references [M, D]`` (0/1 floats or bools; an empty union counts 0)."""
    a, b = masks.float(), references.float()
    inter = a @ b.T
    return (inter / (a.sum(1, keepdim=True) + b.sum(1)[None] - inter).clamp_min(1)).argmax(1)


def label_accuracy(indices: Tensor, labels: dict[str, Tensor], query) -> dict[str, float]:
    """Fraction of samples whose nearest data image has each label a ``LabelQuery`` asks for."""
    return {name: (labels[name][indices] == value).float().mean().item() for name, value in query.items()}


def mean_pairwise_rms(images: Tensor) -> float:
    """Mean RMS distance over the pairs of ``images [N, ...]`` (0 for fewer than two)."""
    n, flat = images.shape[0], images.flatten(1).float()
    d = torch.cdist(flat, flat, compute_mode="donot_use_mm_for_euclid_dist") / flat.shape[1] ** 0.5
    return d.sum().item() / max(1, n * (n - 1))


def diversity(images: Tensor, nearest: Tensor) -> dict[str, float]:
    """Coverage (distinct nearest data images / samples) and mean pairwise RMS distance."""
    return {"coverage": len(set(nearest.tolist())) / images.shape[0], "mean_pairwise_rms": mean_pairwise_rms(images)}


def mean_std(values: Tensor) -> dict[str, float]:
    return {"mean": round(values.float().mean().item(), 3), "std": round(values.float().std().item(), 3)}

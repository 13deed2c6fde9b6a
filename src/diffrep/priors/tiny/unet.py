"""A small ε-prediction U-Net for 32² / 64² toy-world images, conditioned on a text embedding."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from diffrep.priors.tiny.text import token_mask


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of the tiny U-Net (stored beside its weights as JSON)."""

    res: int = 32  # image side (32 or 64)
    channels: int = 32  # width at full resolution
    mults: tuple[int, ...] = (1, 2, 2)  # width multiplier per resolution (32, 16, 8 for res 32)
    blocks: int = 2  # ResBlocks per resolution on the way down
    attention: bool = True  # one self-attention block at the lowest resolution
    text_dim: int = 384  # size of the text embedding
    groups: int = 8  # GroupNorm groups
    cross_attention: bool = False  # cross-attention to the prompt's token states after each ResBlock at <= 16²
    scale_shift: bool = False  # the embedding also scales and shifts the normalised features (ADM's AdaGN)
    scale_shift_res: int = 0  # ... only in blocks whose feature map is at most this side (0: every block)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> UNetConfig:
        return cls(**{**d, "mults": tuple(d["mults"])})  # keys written later default to False when absent


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding ``[B, dim]`` of integer timesteps ``t: [B]`` (Vaswani et al. / DDPM)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.cos(), angles.sin()], dim=1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with the embedding added in between (DDPM); optionally the
    embedding also scales and shifts the second GroupNorm's output, ``norm(h) (1 + s) + b`` with
    ``(s, b) = film(SiLU(emb))`` (ADM's adaptive group norm, Dhariwal & Nichol 2021), and the block
    is followed by cross-attention to the text tokens (Stable Diffusion's transformer block,
    reduced to it). ``film`` starts at zero, so adding it to a trained U-Net changes nothing."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, text_dim: int | None = None,
                 scale_shift: bool = False):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(groups, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        if scale_shift:
            self.film = nn.Linear(emb_dim, 2 * c_out)
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)
        if text_dim is not None:
            self.cross = CrossAttention(c_out, text_dim, groups)

    def forward(self, x: Tensor, emb: Tensor, tokens: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.norm2(h + self.emb(emb)[:, :, None, None])
        if hasattr(self, "film"):
            scale, shift = self.film(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        h = self.skip(x) + self.conv2(F.silu(h))
        return self.cross(h, tokens, mask) if hasattr(self, "cross") else h


class CrossAttention(nn.Module):
    """Multi-head attention from the pixels of a feature map to text tokens ``[B, L, text_dim]``,
    residual; the output projection starts at zero, so adding it to a trained U-Net changes nothing
    until it learns (ControlNet's zero convolution)."""

    def __init__(self, c: int, text_dim: int, groups: int, head_dim: int = 16):
        super().__init__()
        self.heads = max(1, c // head_dim)
        self.norm, self.q, self.out = nn.GroupNorm(groups, c), nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1)
        self.kv = nn.Linear(text_dim, 2 * c)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, tokens: Tensor, mask: Tensor) -> Tensor:
        B, C, H, W = x.shape
        q = self.q(self.norm(x)).flatten(2).transpose(1, 2)  # [B, HW, C]
        k, v = self.kv(tokens).chunk(2, dim=2)  # [B, L, C] each
        q, k, v = (z.unflatten(2, (self.heads, -1)).transpose(1, 2) for z in (q, k, v))  # [B, heads, n, C/heads]
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        return x + self.out(h.transpose(1, 2).reshape(B, H * W, C).transpose(1, 2).reshape(B, C, H, W))


class SelfAttention(nn.Module):
    """Single-head self-attention over the pixels of a feature map, residual."""

    def __init__(self, c: int, groups: int):
        super().__init__()
        self.norm, self.qkv, self.out = nn.GroupNorm(groups, c), nn.Conv2d(c, 3 * c, 1), nn.Conv2d(c, c, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).flatten(2).transpose(1, 2).chunk(3, dim=2)  # [B, HW, C] each
        h = F.scaled_dot_product_attention(q, k, v)
        return x + self.out(h.transpose(1, 2).reshape(B, C, H, W))


class TinyUNet(nn.Module):
    """ε-prediction U-Net: ``forward(x_t [B,3,H,W], t [B], text [B,text_dim]) -> ε̂ [B,3,H,W]``.

    The pooled text embedding is projected and added to the timestep embedding (FiLM-like via the
    ResBlocks' embedding input). With ``cross_attention`` the ResBlocks at 16² and 8² also attend to
    the token states; ``text`` is then ``[B, 1 + L, text_dim]`` from ``TextEncoder.encode_tokens``
    (row 0 the pooled embedding). Default config: 1.53 M parameters (``channels=48``: 3.40 M)."""

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        self.config = cfg = config
        c, g, emb_dim = cfg.channels, cfg.groups, 4 * cfg.channels
        self.time_mlp = nn.Sequential(nn.Linear(c, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.text_mlp = nn.Sequential(nn.Linear(cfg.text_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        widths = [c * m for m in cfg.mults]
        text_at = [cfg.text_dim if cfg.cross_attention and cfg.res >> i <= 16 else None for i in range(len(widths))]
        film_at = [cfg.scale_shift and (cfg.scale_shift_res == 0 or cfg.res >> i <= cfg.scale_shift_res)
                   for i in range(len(widths))]
        self.down, skips, cur = nn.ModuleList(), [c], c
        for i, w in enumerate(widths):
            for _ in range(cfg.blocks):
                self.down.append(ResBlock(cur, w, emb_dim, g, text_at[i], film_at[i]))
                cur = w
                skips.append(cur)
            if i < len(widths) - 1:
                self.down.append(nn.Conv2d(cur, cur, 3, stride=2, padding=1))
                skips.append(cur)
        self.mid1 = ResBlock(cur, cur, emb_dim, g, text_at[-1], film_at[-1])
        self.mid2 = ResBlock(cur, cur, emb_dim, g, scale_shift=film_at[-1])
        self.attn = SelfAttention(cur, g) if cfg.attention else nn.Identity()
        self.up = nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            for _ in range(cfg.blocks + 1):
                self.up.append(ResBlock(cur + skips.pop(), w, emb_dim, g, text_at[i], film_at[i]))
                cur = w
            if i > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.head = nn.Sequential(nn.GroupNorm(g, cur), nn.SiLU(), nn.Conv2d(cur, 3, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, x: Tensor, t: Tensor, text: Tensor) -> Tensor:
        tokens = text if text.ndim == 3 else text[:, None]  # a pooled-only [B, D] is one token
        mask = token_mask(tokens) if self.config.cross_attention else None
        emb = self.time_mlp(timestep_embedding(t, self.config.channels)) + self.text_mlp(tokens[:, 0])
        h = self.stem(x)
        hs = [h]
        for layer in self.down:
            h = layer(h, emb, tokens, mask) if isinstance(layer, ResBlock) else layer(h)
            hs.append(h)
        h = self.mid2(self.attn(self.mid1(h, emb, tokens, mask)), emb)
        for layer in self.up:
            h = layer(torch.cat([h, hs.pop()], 1), emb, tokens, mask) if isinstance(layer, ResBlock) else layer(h)
        return self.head(h)


def param_count(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

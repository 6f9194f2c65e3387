"""The paper's optimizer: AdamW (beta1 0.9, beta2 0.95), weight decay 0.1, 2000 warmup steps, then cosine
decay to 10% of the peak learning rate.

Weight decay applies to every matrix (the attention and feed-forward projections, the token embedding
and the output projection) and not to the RMSNorm gains, which are vectors: shrinking a norm's gain
toward zero only rescales the layer it feeds. The paper does not say which parameters decay; this is
the rule of GPT-2/nanoGPT and most open reproductions.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from train.config import TrainConfig
from train.model import clean_name


def decay_groups(model: nn.Module) -> tuple[list[str], list[str]]:
    """(names that decay, names that do not)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 else no_decay).append(clean_name(name))
    return decay, no_decay


def build_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    fused = cfg.fused_adamw == "on" or (cfg.fused_adamw == "auto" and device.type == "cuda")
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=learning_rate(0, cfg), betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps,
                             fused=fused or None, foreach=None if fused else True)


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Learning rate of 0-based `step`: linear warmup to the peak over `warmup_steps`, then cosine decay
    reaching lr * min_lr_ratio at the last step."""
    peak, floor = cfg.lr, cfg.lr * cfg.min_lr_ratio
    if step < cfg.warmup_steps:
        return peak * (step + 1) / cfg.warmup_steps
    decay_steps = cfg.total_steps - 1 - cfg.warmup_steps
    if decay_steps <= 0:
        return peak
    progress = min(1.0, (step - cfg.warmup_steps) / decay_steps)
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr

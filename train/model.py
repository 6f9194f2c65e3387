"""The LLaMA-1 transformer, as the paper describes it (section 2.2, Table 2).

Pre-normalisation with RMSNorm (computed in float32, eps 1e-6), SwiGLU feed-forward with a hidden size of
2/3 * 4d rounded up to a multiple of 256, rotary position embeddings (theta 10000) applied to adjacent
pairs of q and k channels in every layer, full multi-head causal attention through PyTorch's
scaled_dot_product_attention (the kernel PyTorch picks, or the one `attention_backend` names), no biases,
untied input and output embeddings.
Parameter names follow Meta's release (tok_embeddings, layers.N.attention.wq, feed_forward.w1, ...).
"""
from __future__ import annotations

import hashlib
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from train.config import TrainConfig


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (normed * self.weight.float()).type_as(x)


def rotary_tables(seq_len: int, head_dim: int, theta: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of position * theta^(-2i/head_dim), shape (seq_len, head_dim / 2), float32."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.int64).float() / head_dim)
    angles = torch.outer(torch.arange(seq_len, device=device, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each adjacent channel pair (2i, 2i+1) of x (batch, seq, heads, head_dim) by its angle."""
    pairs = x.float().unflatten(-1, (-1, 2))
    even, odd = pairs.unbind(-1)
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]
    rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)
    return rotated.flatten(-2).type_as(x)


def attention_backends(name: str) -> list[SDPBackend] | None:
    """The SDPA kernels `attention_backend` allows (None: PyTorch's own choice). One backend, no
    fallback: a configuration the kernel cannot run fails instead of silently running another kernel."""
    if name == "auto":
        return None
    return [{"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
             "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}[name]]


class Attention(nn.Module):
    def __init__(self, cfg: TrainConfig):
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.head_dim
        self.wq = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.wk = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.wv = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.wo = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.backends = attention_backends(cfg.attention_backend)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.wq(x).view(b, t, self.n_heads, self.head_dim)
        k = self.wk(x).view(b, t, self.n_heads, self.head_dim)
        v = self.wv(x).view(b, t, self.n_heads, self.head_dim)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if self.backends is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            with sdpa_kernel(self.backends):
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.wo(y.transpose(1, 2).reshape(b, t, -1))


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x)."""

    def __init__(self, cfg: TrainConfig):
        super().__init__()
        self.w1 = nn.Linear(cfg.dim, cfg.hidden_dim, bias=False)
        self.w2 = nn.Linear(cfg.hidden_dim, cfg.dim, bias=False)
        self.w3 = nn.Linear(cfg.dim, cfg.hidden_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    def __init__(self, cfg: TrainConfig):
        super().__init__()
        self.attention_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.attention = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.feed_forward = FeedForward(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        h = x + self.attention(self.attention_norm(x), cos, sin)
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):
    def __init__(self, cfg: TrainConfig):
        super().__init__()
        if cfg.vocab_size <= 0:
            raise ValueError("the model needs a vocabulary size (vocab_size 0 is resolved from the dataset)")
        self.cfg = cfg
        # zeros until init_weights: nn.Embedding's own random init on the meta device would import
        # torch.compile's machinery, seconds of start-up for a dry run
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.dim, _weight=torch.zeros(cfg.vocab_size, cfg.dim))
        self.layers = nn.ModuleList(TransformerBlock(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.output = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (batch, seq) -> logits (batch, seq, vocab)."""
        seq_len = tokens.shape[1]
        if seq_len > self.cfg.seq_len:
            raise ValueError(f"sequence of {seq_len} tokens is longer than the context {self.cfg.seq_len}")
        cos, sin = rotary_tables(seq_len, self.cfg.head_dim, self.cfg.rope_theta, tokens.device)
        h = self.tok_embeddings(tokens)
        for layer in self.layers:
            h = layer(h, cos, sin)
        return self.output(self.norm(h))


def count_parameters(cfg: TrainConfig) -> int:
    """Parameters of the model, counted on the meta device (nothing is allocated)."""
    with torch.device("meta"):
        model = Transformer(cfg)
    return sum(p.numel() for p in model.parameters())


def clean_name(name: str) -> str:
    """A parameter's name without the prefixes that wrappers add (activation checkpointing, compile)."""
    return name.replace("_checkpoint_wrapped_module.", "").replace("_orig_mod.", "")


def _param_seed(seed: int, name: str) -> int:
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


@torch.no_grad()
def init_weights(model: nn.Module, cfg: TrainConfig) -> None:
    """Deterministic initialisation that does not depend on how parameters are sharded.

    LLaMA-1 did not publish its initialisation; this is the GPT-2/OLMo choice: normal(0, init_std) for
    embeddings and projections, init_std / sqrt(2 * n_layers) for the projections that write into the
    residual stream (wo, w2), ones for the norms. Each parameter draws from its own generator seeded by
    (seed, name), so a model sharded over any number of processes gets the same values as an unsharded
    one on the same device type.
    """
    residual_std = cfg.init_std / math.sqrt(2 * cfg.n_layers)
    for raw_name, param in model.named_parameters():
        name = clean_name(raw_name)
        local = param.to_local() if hasattr(param, "to_local") else param
        if name.endswith("norm.weight"):
            local.fill_(1.0)
            continue
        std = residual_std if name.endswith(("attention.wo.weight", "feed_forward.w2.weight")) else cfg.init_std
        gen = torch.Generator(device=local.device).manual_seed(_param_seed(cfg.seed, name))
        full = torch.empty(param.shape, device=local.device, dtype=torch.float32)
        full.normal_(0.0, std, generator=gen)
        if local is param:
            param.copy_(full)
        else:
            from torch.distributed.tensor import distribute_tensor
            param.copy_(distribute_tensor(full, param.device_mesh, param.placements, src_data_rank=None))

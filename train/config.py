"""The one training configuration: model shape, optimizer, batch, efficiency switches and bookkeeping.

Named presets give LLaMA-1's four models with the paper's learning rates, 4M-token batch and token
budgets (Table 2), and three small ones: `tiny` (CPU tests and the demo), `125m`, and `1.4b` (GPU
benchmarks). Any field can be overridden from the command line (`--lr 1e-3` or `lr=1e-3`); a run saves
its resolved configuration (every derived value filled in) as config.json in the run directory.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
from typing import Any

from pipeline.argtypes import Range

PAPER_BATCH_TOKENS = 4 * 1024 * 1024        # "4M tokens": 2048 sequences of 2048
AC_MODES = ("none", "full", "selective")
SWITCHES = ("auto", "on", "off")
PRECISIONS = ("auto", "bf16", "fp32")
DEVICES = ("auto", "cpu", "cuda")

# Fields that fix what a checkpoint means: a resumed run may not change them.
FROZEN_ON_RESUME = ("dim", "n_layers", "n_heads", "vocab_size", "ffn_hidden", "multiple_of", "norm_eps",
                    "rope_theta", "seq_len", "global_batch_tokens", "seed", "init_std")

# What each numeric field can be (0 in vocab_size, ffn_hidden, max_steps, cpu_threads and peak_tflops
# means "derived"; see the fields' comments).
LIMITS: dict[str, Range] = {
    **dict.fromkeys(("dim", "n_layers", "n_heads", "multiple_of", "seq_len", "global_batch_tokens",
                     "micro_batch_size", "log_every", "checkpoint_every", "keep_checkpoints", "max_bad_steps"),
                    Range(1)),
    **dict.fromkeys(("vocab_size", "ffn_hidden", "warmup_steps", "max_steps", "train_tokens", "seed",
                     "cpu_threads", "weight_decay", "peak_tflops", "gpu_tdp_watts", "carbon_kg_per_kwh"), Range(0)),
    **dict.fromkeys(("norm_eps", "rope_theta", "init_std", "lr", "adam_eps", "grad_clip"), Range(0, low_open=True)),
    "min_lr_ratio": Range(0, 1),
    "beta1": Range(0, 1, high_open=True),
    "beta2": Range(0, 1, high_open=True),
    "pue": Range(1),                        # a data centre cannot use less power than its GPUs
}


@dataclasses.dataclass
class TrainConfig:
    name: str = "tiny"
    # model (LLaMA-1: pre-norm RMSNorm, SwiGLU, rotary on q and k, no biases, untied embeddings)
    dim: int = 64
    n_layers: int = 2
    n_heads: int = 4
    vocab_size: int = 32000                 # 0: the dataset's vocabulary
    multiple_of: int = 256
    ffn_hidden: int = 0                     # 0: 2/3 * 4 * dim rounded up to a multiple of `multiple_of`
    norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    seq_len: int = 2048
    init_std: float = 0.02                  # residual projections (wo, w2) get init_std / sqrt(2 * n_layers)
    # optimisation (paper section 2.2)
    lr: float = 3e-4
    min_lr_ratio: float = 0.1               # cosine decay ends at 10% of the peak
    warmup_steps: int = 2000
    max_steps: int = 0                      # 0: train_tokens / global_batch_tokens
    train_tokens: int = 0
    global_batch_tokens: int = PAPER_BATCH_TOKENS
    micro_batch_size: int = 1               # sequences per process per forward/backward
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    adam_eps: float = 1e-8
    grad_clip: float = 1.0
    seed: int = 0
    # efficiency
    activation_checkpointing: str = "selective"   # none | full | selective (keeps linear-layer outputs)
    compile: str = "auto"                   # auto: on for CUDA
    precision: str = "auto"                 # auto: bf16 autocast on CUDA, fp32 on CPU
    fused_adamw: str = "auto"               # auto: fused on CUDA
    device: str = "auto"
    cpu_threads: int = 0                    # CPU training: intra-op threads (0: PyTorch's default)
    reshard_after_forward: bool = True      # FSDP2: free gathered weights after forward (ZeRO-3)
    # bookkeeping
    log_every: int = 10
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    max_bad_steps: int = 5                  # stop after this many non-finite steps in a row
    tensorboard: bool = True
    peak_tflops: float = 0.0                # 0: from the device table (A100 312, H100 989 bf16 dense)
    gpu_tdp_watts: float = 400.0            # A100-80GB, as in the paper's carbon estimate
    pue: float = 1.1
    carbon_kg_per_kwh: float = 0.385

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def hidden_dim(self) -> int:
        if self.ffn_hidden:
            return self.ffn_hidden
        return self.multiple_of * math.ceil(int(2 * 4 * self.dim / 3) / self.multiple_of)

    @property
    def global_batch_sequences(self) -> int:
        return self.global_batch_tokens // self.seq_len

    @property
    def total_steps(self) -> int:
        if self.max_steps:
            return self.max_steps
        return math.ceil(self.train_tokens / self.global_batch_tokens)

    def grad_accum_steps(self, world_size: int) -> int:
        per_micro = self.micro_batch_size * world_size
        if self.global_batch_sequences % per_micro:
            raise ValueError(
                f"global batch of {self.global_batch_sequences} sequences ({self.global_batch_tokens} tokens / "
                f"seq_len {self.seq_len}) is not a multiple of micro_batch_size {self.micro_batch_size} x "
                f"{world_size} processes")
        return self.global_batch_sequences // per_micro

    def validate(self) -> None:
        for name in LIMITS:
            problem = out_of_range(name, getattr(self, name))
            if problem:
                raise ValueError(f"config {self.name}: {problem}")
        checks = [
            (self.dim % self.n_heads == 0, f"dim {self.dim} is not a multiple of n_heads {self.n_heads}"),
            (self.head_dim % 2 == 0, f"head dimension {self.head_dim} must be even for rotary embeddings"),
            (self.global_batch_tokens % self.seq_len == 0,
             f"global_batch_tokens {self.global_batch_tokens} is not a multiple of seq_len {self.seq_len}"),
            (self.total_steps > 0, "set max_steps or train_tokens"),
            (0 <= self.warmup_steps <= self.total_steps,
             f"warmup_steps {self.warmup_steps} must lie in [0, {self.total_steps}] (the run's steps)"),
            (self.activation_checkpointing in AC_MODES, f"activation_checkpointing must be one of {AC_MODES}"),
            (self.compile in SWITCHES, f"compile must be one of {SWITCHES}"),
            (self.fused_adamw in SWITCHES, f"fused_adamw must be one of {SWITCHES}"),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}"),
            (self.device in DEVICES, f"device must be one of {DEVICES}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"config {self.name}: {message}")

    def resolved(self, data_vocab_size: int | None = None) -> TrainConfig:
        """A copy with every derived value written out (what the run saves and reports)."""
        cfg = dataclasses.replace(self, ffn_hidden=self.hidden_dim, max_steps=self.total_steps)
        if cfg.train_tokens == 0:
            cfg.train_tokens = cfg.max_steps * cfg.global_batch_tokens
        if cfg.vocab_size == 0 and data_vocab_size:
            cfg.vocab_size = data_vocab_size
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown config fields: {', '.join(unknown)}")
        return cls(**d)


def _paper(name: str, dim: int, n_heads: int, n_layers: int, lr: float, tokens: float) -> TrainConfig:
    return TrainConfig(name=name, dim=dim, n_heads=n_heads, n_layers=n_layers, lr=lr, train_tokens=int(tokens),
                       checkpoint_every=1000, log_every=10)


PRESETS: dict[str, TrainConfig] = {
    "tiny": TrainConfig(name="tiny", dim=64, n_layers=2, n_heads=4, vocab_size=0, seq_len=64,
                        global_batch_tokens=1024, micro_batch_size=8, lr=3e-3, warmup_steps=20, max_steps=300,
                        activation_checkpointing="none", log_every=10, checkpoint_every=100, keep_checkpoints=2,
                        cpu_threads=1),     # matrices this small gain nothing from more threads, and lose much when cores are shared
    "125m": TrainConfig(name="125m", dim=768, n_layers=12, n_heads=12, lr=6e-4, global_batch_tokens=512 * 1024,
                        micro_batch_size=16, warmup_steps=500, max_steps=20_000),
    "1.4b": TrainConfig(name="1.4b", dim=2048, n_layers=24, n_heads=16, lr=3e-4, micro_batch_size=8,
                        warmup_steps=2000, max_steps=50_000),
    # Table 2: 7B and 13B saw 1.0T tokens, 33B and 65B 1.4T
    "7b": _paper("7b", 4096, 32, 32, 3.0e-4, 1.0e12),
    "13b": _paper("13b", 5120, 40, 40, 3.0e-4, 1.0e12),
    "33b": _paper("33b", 6656, 52, 60, 1.5e-4, 1.4e12),
    "65b": _paper("65b", 8192, 64, 80, 1.5e-4, 1.4e12),
}


def preset(name: str) -> TrainConfig:
    key = name.lower()
    if key not in PRESETS:
        close = difflib.get_close_matches(key, PRESETS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ValueError(f"unknown config {name!r}{hint}; known: {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[key])


def parse_value(field: dataclasses.Field, text: str) -> Any:
    """A command-line string as the field's type: ints accept 4_194_304, bools true/false/1/0/yes/no/on/off."""
    kind = field.type if isinstance(field.type, str) else field.type.__name__
    try:
        if kind == "bool":
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if kind == "int":
            return int(float(text)) if "e" in text.lower() and float(text).is_integer() else int(text)
        if kind == "float":
            return float(text)
        return text
    except ValueError:
        raise ValueError(f"{field.name}: {text!r} is not a valid {kind}") from None


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def out_of_range(name: str, value: Any) -> str | None:
    """Why `value` cannot be the field's, or None when it can (or the field has no numeric limits)."""
    bounds = LIMITS.get(name)
    if bounds is None or value in bounds:
        return None
    return f"{name} must be {bounds}, not {value}"


def apply_overrides(cfg: TrainConfig, overrides: dict[str, str]) -> TrainConfig:
    """Overrides as {field: text}; names may use dashes. Unknown names are an error with a suggestion."""
    changes = {}
    for raw, text in overrides.items():
        name = raw.replace("-", "_")
        if name not in FIELDS or name == "name":
            close = difflib.get_close_matches(name, FIELDS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"unknown config field {raw!r}{hint}")
        changes[name] = parse_value(FIELDS[name], text)
        problem = out_of_range(name, changes[name])
        if problem:
            raise ValueError(problem)
    return dataclasses.replace(cfg, **changes)


def parse_override_words(words: list[str]) -> dict[str, str]:
    """`key=value` words from the command line."""
    out = {}
    for w in words:
        key, sep, value = w.partition("=")
        if not sep or not key:
            raise ValueError(f"expected key=value, got {w!r}")
        out[key.lstrip("-")] = value
    return out

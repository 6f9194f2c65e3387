"""The one training configuration: model shape, optimizer, batch, efficiency switches and bookkeeping.

Named presets give LLaMA-1's four models with the paper's learning rates, 4M-token batch and token
budgets (Table 2), each with the micro-batch that a per-GPU memory estimate chooses for its cluster
(`memory_estimate`, `choose_micro_batch`; `--dry-run` prints the estimate), and three small ones:
`tiny` (CPU tests and the demo), `125m`, and `1.4b` (GPU benchmarks). Any field can be overridden from
the command line (`--lr 1e-3` or `lr=1e-3`); a run saves its resolved configuration (every derived value
filled in) as config.json in the run directory.
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
REDUCE_DTYPES = ("float32", "bfloat16")
GRAD_SYNC = ("auto", "last", "every")
ATTENTION_BACKENDS = ("auto", "flash", "cudnn", "efficient", "math")

# Fields that fix what a checkpoint means: a resumed run may not change them.
FROZEN_ON_RESUME = ("dim", "n_layers", "n_heads", "vocab_size", "ffn_hidden", "multiple_of", "norm_eps",
                    "rope_theta", "seq_len", "global_batch_tokens", "seed", "init_std")
# Fields that shape the learning-rate schedule: changed on resume only with --allow-schedule-change.
SCHEDULE_FIELDS = ("lr", "min_lr_ratio", "warmup_steps", "max_steps")

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
    "dp_replicate": Range(1),
    **dict.fromkeys(("dp_shard", "throughput_warmup_steps", "gc_every"), Range(0)),
    "gpu_memory_gib": Range(0, low_open=True),
    "pg_timeout_s": Range(0, low_open=True),
    "checkpoint_every_s": Range(0),
    "val_every": Range(0),
    "val_tokens": Range(1),
    "eval_every": Range(0),
    "eval_limit": Range(0),
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
    # parallelism and speed
    dp_replicate: int = 1                   # HSDP: replicas (across nodes); 1: plain FSDP over every process
    dp_shard: int = 0                       # HSDP: processes each replica is sharded over (0: world / dp_replicate)
    reduce_dtype: str = "float32"           # FSDP2 gradient reduce-scatter/all-reduce dtype
    grad_sync: str = "auto"                 # last: reduce gradients on the last micro-step only; every: each one;
                                            # auto: last when the unsharded gradients fit (memory_estimate)
    attention_backend: str = "auto"         # auto | flash | cudnn | efficient | math (sdpa_kernel)
    gpu_memory_gib: float = 80.0            # the memory per GPU that micro-batch choices assume (A100/H100-80GB)
    throughput_warmup_steps: int = 3        # steps (compilation included) left out of tokens/s and MFU
    gc_every: int = 50                      # Python's cyclic GC runs every N steps, never in between (0: as usual)
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
    # resilience and validation
    pg_timeout_s: float = 600.0             # process-group collectives give up after this long
    checkpoint_every_s: float = 0.0         # also save when this much wall time passed since the last save (0: off)
    async_checkpoint: str = "auto"          # auto: on with more than one process (DCP async_save)
    val_every: int = 500                    # validation loss every N steps, when there is held-out data (0: off)
    val_tokens: int = 65536                 # tokens evaluated per validation source
    # benchmarks during training (train/evaluation/in_loop.py)
    eval_tasks: str = ""                    # comma-separated task names (train/evaluation/tasks.py)
    eval_every: int = 0                     # score them every N steps (0: off)
    eval_data_dir: str = ""                 # the tasks' files, in their published layouts
    eval_limit: int = 200                   # the first N examples of each task (0: all)

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
            (self.reduce_dtype in REDUCE_DTYPES, f"reduce_dtype must be one of {REDUCE_DTYPES}"),
            (self.grad_sync in GRAD_SYNC, f"grad_sync must be one of {GRAD_SYNC}"),
            (self.attention_backend in ATTENTION_BACKENDS, f"attention_backend must be one of {ATTENTION_BACKENDS}"),
            (self.async_checkpoint in SWITCHES, f"async_checkpoint must be one of {SWITCHES}"),
        ]
        for ok, message in checks + self._eval_checks():
            if not ok:
                raise ValueError(f"config {self.name}: {message}")

    def _eval_checks(self) -> list[tuple[bool, str]]:
        if not self.eval_every:
            return []
        from train.evaluation.tasks import parse_task_list
        try:
            parse_task_list(self.eval_tasks)
        except ValueError as exc:
            return [(False, f"eval_tasks: {exc}")]
        return [(bool(self.eval_data_dir), "eval_every needs eval_data_dir (the tasks' files)")]

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


# --- memory per GPU and the micro-batch it allows ------------------------------------------------------

MICRO_STEP_TOKENS = 8192                 # per GPU and micro-step: enough to amortise FSDP's gathers
MEMORY_MARGIN = 0.9                      # of gpu_memory_gib: the rest for the allocator's fragmentation,
                                         # NCCL buffers and kernel workspaces


def parameter_count(cfg: TrainConfig) -> int:
    """Table 2's count, by arithmetic (train.model.count_parameters counts the module itself)."""
    per_layer = 4 * cfg.dim * cfg.dim + 3 * cfg.dim * cfg.hidden_dim + 2 * cfg.dim
    return cfg.n_layers * per_layer + 2 * cfg.vocab_size * cfg.dim + cfg.dim


def mesh_shape(cfg: TrainConfig, world: int) -> tuple[int, int]:
    """(replicas, processes per replica) of the data-parallel mesh: HSDP when replicas > 1."""
    shard = cfg.dp_shard or world // cfg.dp_replicate
    if cfg.dp_replicate * shard != world:
        raise ValueError(f"dp_replicate {cfg.dp_replicate} x dp_shard {cfg.dp_shard or shard} must equal the "
                         f"{world} processes")
    return cfg.dp_replicate, shard


def _activation_bytes_per_token_layer(cfg: TrainConfig, mode: str) -> float:
    """What the backward pass keeps of one block, per token (bf16 activations, fp32 residual stream).
    selective: the outputs of the matrix products (q, k, v, wo, w1, w3, w2) and of attention, plus the
    block's input; full: the block's input only; none: every intermediate, norms and rotary in fp32."""
    d, h = cfg.dim, cfg.hidden_dim
    if mode == "full":
        return 4 * d
    if mode == "selective":
        return 2 * (6 * d + 2 * h) + 4 * d
    return 2 * (10 * d + 4 * h) + 4 * 8 * d


def memory_estimate(cfg: TrainConfig, world: int, micro_batch: int | None = None,
                    grad_sync: str | None = None) -> dict[str, float]:
    """Bytes per GPU of bf16 FSDP2 training, by component; the optimizer state is sharded over the
    processes of one replica (dp_shard). grad_sync 'last' holds every unsharded gradient (in
    reduce_dtype) between the micro-steps of a step."""
    n, shard = parameter_count(cfg), mesh_shape(cfg, world)[1]
    mb = micro_batch or cfg.micro_batch_size
    tokens = mb * cfg.seq_len
    block = cfg.n_layers and (n - 2 * cfg.vocab_size * cfg.dim - cfg.dim) // cfg.n_layers
    reduce_bytes = 4 if cfg.reduce_dtype == "float32" else 2
    accumulating = ((grad_sync or resolve_grad_sync(cfg, world, mb)) == "last"
                    and cfg.global_batch_sequences > mb * world)
    layers = cfg.n_layers if cfg.activation_checkpointing != "full" else cfg.n_layers + 1
    gathered = 2 * (3 * block + cfg.vocab_size * cfg.dim) + 4 * cfg.vocab_size * cfg.dim
    est = {
        "weights, fp32, sharded": 4 * n / shard,
        "gradients, fp32, sharded": 4 * n / shard,
        "AdamW moments, fp32, sharded": 8 * n / shard,
        # 3 blocks (running, prefetched, the last one kept), the output layer bf16, the embedding fp32
        "gathered weights": 0.0 if shard == 1 else gathered,
        "unsharded gradients between micro-steps": reduce_bytes * n if accumulating and shard > 1 else 0.0,
        f"activations, {cfg.activation_checkpointing} checkpointing, {tokens} tokens":
            tokens * cfg.n_layers * _activation_bytes_per_token_layer(cfg, cfg.activation_checkpointing)
            + (tokens * _activation_bytes_per_token_layer(cfg, "none") if layers > cfg.n_layers else 0.0),
        "logits and their gradient": tokens * cfg.vocab_size * (2 + 4 + 4),
    }
    return est


def fits(cfg: TrainConfig, estimate: dict[str, float]) -> bool:
    return sum(estimate.values()) <= MEMORY_MARGIN * cfg.gpu_memory_gib * 2**30


def resolve_grad_sync(cfg: TrainConfig, world: int, micro_batch: int | None = None) -> str:
    """auto: reduce on the last micro-step only when the unsharded gradients leave room for the rest."""
    if cfg.grad_sync != "auto":
        return cfg.grad_sync
    return "last" if fits(cfg, memory_estimate(cfg, world, micro_batch, "last")) else "every"


def choose_micro_batch(cfg: TrainConfig, world: int) -> int:
    """The smallest micro-batch giving each GPU >= MICRO_STEP_TOKENS tokens that fits in memory, or else
    the largest that fits (1 at least); only sizes that divide the global batch over `world` processes."""
    per_process = cfg.global_batch_sequences // world
    sizes = [mb for mb in range(1, per_process + 1) if per_process % mb == 0]
    fitting = [mb for mb in sizes if fits(cfg, memory_estimate(cfg, world, mb))]
    if not fitting:
        return 1
    enough = [mb for mb in fitting if mb * cfg.seq_len >= MICRO_STEP_TOKENS]
    return enough[0] if enough else fitting[-1]


# The clusters the paper presets choose their micro-batch for: the README's 4 x 8 GPUs for 7B, the
# paper's 2048 A100-80GB for 65B (section 2.4), and between them in proportion.
PRESET_GPUS = {"7b": 32, "13b": 64, "33b": 512, "65b": 2048}


def _paper(name: str, dim: int, n_heads: int, n_layers: int, lr: float, tokens: float) -> TrainConfig:
    cfg = TrainConfig(name=name, dim=dim, n_heads=n_heads, n_layers=n_layers, lr=lr, train_tokens=int(tokens),
                      checkpoint_every=1000, log_every=10)
    return dataclasses.replace(cfg, micro_batch_size=choose_micro_batch(cfg, PRESET_GPUS[name]))


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

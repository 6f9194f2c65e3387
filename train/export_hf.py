"""Export a run's checkpoint as a Hugging Face LlamaForCausalLM directory: config.json, safetensors
weights (sharded past `max_shard_bytes`, with an index) and the run's tokenizer when it has a Hugging
Face tokenizer directory (an imported run's own copy, else the hf/ beside the dataset's tokenizer).

Weights are renamed (w1 -> gate_proj, w3 -> up_proj, w2 -> down_proj, wq -> q_proj, ...) and the rows
of wq and wk are permuted per head from the adjacent-pair rotary layout (channels 2i, 2i+1 rotate
together) to Hugging Face's half-split layout (channels i, i + head_dim/2); train/import_hf.py maps
back with the same names and the inverse permutation. The checkpoint is read one
layer at a time through DCP, so memory stays near one output shard whatever the model's size; the
directory appears under its name only when complete.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator

import torch

from pipeline.runtime.guard import claim_output
from train.checkpoint import latest_checkpoint, list_checkpoints, read_weights
from train.config import TrainConfig
from train.model import Transformer
from train.run_dir import IMPORTED, load_run_config, load_run_info

log = logging.getLogger("smallgiant.train")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
RENAME = {"attention.wq": "self_attn.q_proj", "attention.wk": "self_attn.k_proj", "attention.wv": "self_attn.v_proj",
          "attention.wo": "self_attn.o_proj", "feed_forward.w1": "mlp.gate_proj", "feed_forward.w2": "mlp.down_proj",
          "feed_forward.w3": "mlp.up_proj", "attention_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}


def hf_name(name: str) -> str:
    if name == "tok_embeddings.weight":
        return "model.embed_tokens.weight"
    if name == "norm.weight":
        return "model.norm.weight"
    if name == "output.weight":
        return "lm_head.weight"
    _, layer, rest = name.split(".", 2)
    module, param = rest.rsplit(".", 1)
    return f"model.layers.{layer}.{RENAME[module]}.{param}"


def is_rotary_projection(name: str) -> bool:
    """Whether rows of this parameter of ours are rotated in pairs (and so permuted between layouts)."""
    return name.endswith(("attention.wq.weight", "attention.wk.weight"))


def to_half_split_rotary(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Rows of each head reordered from (0, 1), (2, 3), ... pairs to (0, D/2), (1, D/2 + 1), ... pairs."""
    out_dim, in_dim = w.shape
    return w.view(n_heads, out_dim // n_heads // 2, 2, in_dim).transpose(1, 2).reshape(out_dim, in_dim)


def from_half_split_rotary(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """The inverse of `to_half_split_rotary`: Hugging Face's half-split rows back to adjacent pairs."""
    out_dim, in_dim = w.shape
    return w.view(n_heads, 2, out_dim // n_heads // 2, in_dim).transpose(1, 2).reshape(out_dim, in_dim)


def hf_config(cfg: TrainConfig, dtype: str, bos_id: int, eos_id: int) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": cfg.dim, "intermediate_size": cfg.hidden_dim, "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads, "num_key_value_heads": cfg.n_heads, "head_dim": cfg.head_dim,
        "vocab_size": cfg.vocab_size, "max_position_embeddings": cfg.seq_len, "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta, "rope_scaling": None, "hidden_act": "silu", "tie_word_embeddings": False,
        "attention_bias": False, "mlp_bias": False, "initializer_range": cfg.init_std,
        "bos_token_id": bos_id, "eos_token_id": eos_id, "torch_dtype": dtype,
    }


def _parameter_groups(cfg: TrainConfig) -> Iterator[list[tuple[str, torch.Size]]]:
    """(name, shape) of every parameter, one group per layer, embeddings first and the head last."""
    with torch.device("meta"):
        shapes = [(n, p.shape) for n, p in Transformer(cfg).named_parameters()]
    yield [(n, s) for n, s in shapes if n.startswith("tok_embeddings")]
    for i in range(cfg.n_layers):
        yield [(n, s) for n, s in shapes if n.startswith(f"layers.{i}.")]
    yield [(n, s) for n, s in shapes if not n.startswith(("tok_embeddings", "layers."))]


def _converted_tensors(cfg: TrainConfig, checkpoint: str, dtype: torch.dtype) -> Iterator[tuple[str, torch.Tensor]]:
    for group in _parameter_groups(cfg):
        state = read_weights(checkpoint, dict(group))
        for name, _ in group:
            w = state[name]
            if is_rotary_projection(name):
                w = to_half_split_rotary(w, cfg.n_heads)
            yield hf_name(name), w.to(dtype).contiguous()


def _write_shards(tensors: Iterator[tuple[str, torch.Tensor]], directory: str, max_shard_bytes: int) -> int:
    from safetensors.torch import save_file
    shards: list[dict[str, str]] = []
    current: dict[str, torch.Tensor] = {}
    size = total = 0

    def flush() -> None:
        path = os.path.join(directory, f"part-{len(shards):05d}.safetensors")
        save_file(current, path, metadata={"format": "pt"})
        shards.append({name: path for name in current})

    for name, t in tensors:
        nbytes = t.numel() * t.element_size()
        if current and size + nbytes > max_shard_bytes:
            flush()
            current, size = {}, 0
        current[name], size, total = t, size + nbytes, total + nbytes
    if current:
        flush()
    if len(shards) == 1:
        os.rename(next(iter(shards[0].values())), os.path.join(directory, "model.safetensors"))
        return total
    weight_map = {}
    for i, shard in enumerate(shards):
        final = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        os.rename(next(iter(shard.values())), os.path.join(directory, final))
        weight_map.update({name: final for name in shard})
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
    return total


def _tokenizer_dir(run_dir: str, run: dict) -> str | None:
    """An imported run's own tokenizer files (train/import_hf.py), else those of the dataset's tokenizer."""
    if IMPORTED in run:
        return os.path.join(run_dir, run[IMPORTED]["tokenizer"]["dir"])
    tok_dir = (run.get("tokenizer") or {}).get("path")
    return os.path.join(tok_dir, "hf") if tok_dir else None


def _copy_tokenizer(run_dir: str, run: dict, directory: str) -> str:
    hf_dir = _tokenizer_dir(run_dir, run)
    if not hf_dir:
        return "the run's dataset does not record its tokenizer: no tokenizer files exported"
    if not os.path.isdir(hf_dir):
        return f"no Hugging Face tokenizer directory at {hf_dir}: no tokenizer files exported"
    for name in sorted(os.listdir(hf_dir)):
        src = os.path.join(hf_dir, name)
        if os.path.isfile(src):
            shutil.copyfile(src, os.path.join(directory, name))
    return f"tokenizer copied from {hf_dir}"


def export_hf(run_dir: str, output: str, dtype: str = "bfloat16", step: int | None = None,
              max_shard_bytes: int = 5 * 2**30, overwrite: bool = False) -> dict:
    """Write `output` from the run's latest checkpoint (or the one at `step`); return a report. The files
    are built in the output's staging area and replace an earlier export only when all are written."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}")
    cfg = load_run_config(run_dir)
    ckpt_dir = os.path.join(run_dir, "checkpoints")
    if step is None:
        found = (latest_checkpoint(ckpt_dir) or (0, None))[1]
    else:
        found = dict(list_checkpoints(ckpt_dir)).get(step)
    if not found:
        raise FileNotFoundError(f"no checkpoint{f' at step {step}' if step is not None else ''} in {ckpt_dir}")
    run = load_run_info(run_dir)
    with claim_output(output, "train export-hf", ["*"], [run_dir], overwrite) as out:
        tmp = out.stage()
        os.makedirs(tmp)
        total = _write_shards(_converted_tensors(cfg, found, DTYPES[dtype]), tmp, max_shard_bytes)
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(hf_config(cfg, dtype, run["bos_id"], run["eos_id"]), f, indent=2, sort_keys=True)
        with open(os.path.join(tmp, "generation_config.json"), "w") as f:
            json.dump({"bos_token_id": run["bos_id"], "eos_token_id": run["eos_id"]}, f, indent=2)
        tokenizer_note = _copy_tokenizer(run_dir, run, tmp)
        out.publish(["*"])
    return {"checkpoint": found, "output": output, "bytes": total, "dtype": dtype, "tokenizer": tokenizer_note}

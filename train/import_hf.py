"""Import a Hugging Face LlamaForCausalLM directory as a run that `smallgiant train --resume` continues
(continued pretraining).

The directory's config.json becomes the run's model shape (hidden_size -> dim, num_hidden_layers ->
n_layers, num_attention_heads -> n_heads, intermediate_size -> ffn_hidden, vocab_size, rms_norm_eps,
rope_theta, max_position_embeddings -> seq_len); the training fields come from `--config PRESET` (or the
defaults) and the command line. What our model cannot represent (grouped-query attention, tied
embeddings, rope scaling, biases, another activation or head size) is refused by name.

The weights are read one safetensors tensor at a time, shard by shard (a single model.safetensors or
shards listed in model.safetensors.index.json), renamed and un-permuted with train/export_hf.py's
mapping into a float32 model. The run's first checkpoint, at step 0, holds them with AdamW's initial
state (step 0, zero moments; the zeros of one shape are one tensor, so they cost no memory per
parameter), so a resumed run takes exactly a fresh optimizer's first step. The data cursor of a
checkpoint belongs to a dataset, so the dataset is named at import. The tokenizer files are copied to
RUN/tokenizer/hf, and a SentencePiece tokenizer.model also to RUN/tokenizer: the layout that
`smallgiant tokenizer shards --tokenizer RUN/tokenizer` reads.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil

import torch

from pipeline.runtime.guard import check_no_overlap
from tokenizer.shard_format import TokenDataset
from train.checkpoint import Checkpointer
from train.config import TrainConfig, apply_overrides
from train.data import SequenceLoader
from train.export_hf import from_half_split_rotary, hf_name, is_rotary_projection
from train.model import Transformer
from train.optim import build_optimizer
from train.parallel import Runtime
from train.run_dir import hold_run_dir, prepare_run_dir, record_import

log = logging.getLogger("smallgiant.train")
INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "added_tokens.json", "vocab.json", "merges.txt", "chat_template.jinja")
# set from the checkpoint's config.json: an override would contradict the weights
MODEL_FIELDS = ("dim", "n_layers", "n_heads", "vocab_size", "ffn_hidden", "multiple_of", "norm_eps", "rope_theta",
                "init_std")
IGNORED_TENSOR = "rotary_emb.inv_freq"      # a buffer older conversions saved; the model recomputes it


def read_hf_config(hf_dir: str) -> dict:
    path = os.path.join(hf_dir, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: {hf_dir} is not a Hugging Face model directory")
    with open(path) as f:
        return json.load(f)


def rope_theta(hf: dict) -> float:
    """transformers 5 writes rope_parameters {rope_type, rope_theta}; earlier versions rope_theta."""
    params = hf.get("rope_parameters") or {}
    return float(params.get("rope_theta", hf.get("rope_theta", 10000.0)))


def unsupported(hf: dict) -> list[str]:
    """Why our model cannot hold this checkpoint: one reason per feature it lacks (empty: it can)."""
    dim, heads = hf.get("hidden_size"), hf.get("num_attention_heads")
    rope_type = (hf.get("rope_parameters") or {}).get("rope_type", "default")
    checks = [
        (hf.get("model_type") == "llama" and "LlamaForCausalLM" in (hf.get("architectures") or ["LlamaForCausalLM"]),
         f"model_type {hf.get('model_type')!r} / architectures {hf.get('architectures')}: only LlamaForCausalLM"),
        (hf.get("num_key_value_heads") in (None, heads),
         f"num_key_value_heads {hf.get('num_key_value_heads')} != num_attention_heads {heads}: grouped-query "
         "attention is not in the model (LLaMA-1 uses full multi-head attention)"),
        (not hf.get("tie_word_embeddings", False), "tie_word_embeddings: the model's input and output embeddings "
                                                   "are separate matrices"),
        (not hf.get("rope_scaling") and rope_type == "default",
         f"rope scaling ({hf.get('rope_scaling') or rope_type}): the model's rotary embeddings are unscaled"),
        (not hf.get("attention_bias", False), "attention_bias: the model's projections have no biases"),
        (not hf.get("mlp_bias", False), "mlp_bias: the model's projections have no biases"),
        (hf.get("hidden_act", "silu") == "silu", f"hidden_act {hf.get('hidden_act')!r}: the model's SwiGLU uses silu"),
        (isinstance(dim, int) and isinstance(heads, int) and heads > 0
         and hf.get("head_dim") in (None, dim // heads) and dim % heads == 0,
         f"head_dim {hf.get('head_dim')} with hidden_size {dim} and {heads} heads: the model's head size is "
         "hidden_size / num_attention_heads"),
    ]
    return [why for ok, why in checks if not ok]


def config_from_hf(hf: dict, base: TrainConfig, overrides: dict[str, str] | None = None) -> TrainConfig:
    """The run's configuration: the model shape from `hf`, everything else from `base` and `overrides`
    (which may shorten seq_len below max_position_embeddings, but not change the shape)."""
    reasons = unsupported(hf)
    if reasons:
        raise ValueError("this checkpoint cannot be imported: " + "; ".join(reasons))
    overrides = dict(overrides or {})
    fixed = sorted(k for k in overrides if k.replace("-", "_") in MODEL_FIELDS)
    if fixed:
        raise ValueError(f"{', '.join(fixed)}: set by the checkpoint's config.json, not by an override")
    cfg = dataclasses.replace(
        base, dim=hf["hidden_size"], n_layers=hf["num_hidden_layers"], n_heads=hf["num_attention_heads"],
        vocab_size=hf["vocab_size"], ffn_hidden=hf["intermediate_size"], norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        rope_theta=rope_theta(hf), seq_len=hf["max_position_embeddings"],
        init_std=float(hf.get("initializer_range", base.init_std)))
    cfg = apply_overrides(cfg, overrides)
    if cfg.seq_len > hf["max_position_embeddings"]:
        raise ValueError(f"seq_len {cfg.seq_len} is longer than the checkpoint's max_position_embeddings "
                         f"{hf['max_position_embeddings']}")
    return cfg.resolved()


def weight_files(hf_dir: str) -> list[str]:
    """The safetensors files holding the weights, in the index's order (or the single file)."""
    index = os.path.join(hf_dir, INDEX)
    if os.path.isfile(index):
        with open(index) as f:
            names = sorted(set(json.load(f)["weight_map"].values()))
        for name in names:
            if os.path.basename(name) != name or name in ("", ".", ".."):
                raise ValueError(f"{index} names {name!r}, which is not a file of {hf_dir}")
            if not os.path.isfile(os.path.join(hf_dir, name)):
                raise FileNotFoundError(f"{index} lists {name}, which is missing from {hf_dir}")
        return [os.path.join(hf_dir, name) for name in names]
    if os.path.isfile(os.path.join(hf_dir, SINGLE)):
        return [os.path.join(hf_dir, SINGLE)]
    raise FileNotFoundError(f"neither {INDEX} nor {SINGLE} in {hf_dir}: only safetensors checkpoints are read "
                            "(save_pretrained(..., safe_serialization=True) writes them)")


@torch.no_grad()
def load_model(cfg: TrainConfig, hf_dir: str) -> Transformer:
    """Our model, float32 on CPU, holding the checkpoint's weights; every tensor is read, checked and
    copied one at a time, so memory is the model plus one tensor."""
    from safetensors import safe_open
    with torch.device("meta"):
        model = Transformer(cfg)
    model.to_empty(device="cpu")
    params = dict(model.named_parameters())
    ours = {hf_name(name): name for name in params}
    missing = set(ours)
    for path in weight_files(hf_dir):
        with safe_open(path, framework="pt") as f:
            for key in f.keys():
                if key.endswith(IGNORED_TENSOR):
                    continue
                if key not in missing:
                    why = "appears twice" if key in ours else "has no place in the model"
                    raise ValueError(f"{path}: tensor {key} {why}")
                name, w = ours[key], f.get_tensor(key)
                if w.shape != params[name].shape:
                    raise ValueError(f"{path}: tensor {key} has shape {tuple(w.shape)}, the model's "
                                     f"{name} {tuple(params[name].shape)}")
                if is_rotary_projection(name):
                    w = from_half_split_rotary(w, cfg.n_heads)
                params[name].copy_(w.float())
                missing.discard(key)
    if missing:
        raise ValueError(f"{hf_dir}: the checkpoint lacks {len(missing)} tensors ({sorted(missing)[0]}, ...)")
    return model


def initial_adamw_state(optimizer: torch.optim.AdamW) -> None:
    """Give every parameter AdamW's state before its first step (step 0, zero moments), sharing one zero
    tensor per shape: the checkpoint needs the state's tensors, not copies of them."""
    zeros: dict[tuple[torch.Size, torch.dtype], torch.Tensor] = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            z = zeros.setdefault((p.shape, p.dtype), torch.zeros_like(p, memory_format=torch.contiguous_format))
            optimizer.state[p] = {"step": torch.tensor(0.0), "exp_avg": z, "exp_avg_sq": z}


def check_dataset_tokenizer(hf_dir: str, dataset: TokenDataset) -> None:
    """A dataset tokenized with another SentencePiece model would be nonsense to this model."""
    model_file = os.path.join(hf_dir, "tokenizer.model")
    if not (dataset.tokenizer_sha256 and os.path.isfile(model_file)):
        return
    with open(model_file, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if digest != dataset.tokenizer_sha256:
        raise ValueError(f"{dataset.directory} was tokenized with a tokenizer.model of SHA-256 "
                         f"{dataset.tokenizer_sha256[:12]}..., {model_file} is {digest[:12]}...: tokenize the "
                         "data with the model's own tokenizer")


def copy_tokenizer(hf_dir: str, run_dir: str) -> dict:
    """Copy the tokenizer files to RUN/tokenizer/hf (replacing an earlier import's); what was copied."""
    target = os.path.join(run_dir, "tokenizer")
    tmp = f"{target}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "hf"))
    files = [name for name in TOKENIZER_FILES if os.path.isfile(os.path.join(hf_dir, name))]
    for name in files:
        shutil.copyfile(os.path.join(hf_dir, name), os.path.join(tmp, "hf", name))
    sentencepiece = "tokenizer.model" in files
    if sentencepiece:      # our tokenizer directory layout: tokenizer.model beside hf/
        shutil.copyfile(os.path.join(hf_dir, "tokenizer.model"), os.path.join(tmp, "tokenizer.model"))
    shutil.rmtree(target, ignore_errors=True)
    os.rename(tmp, target)
    return {"dir": "tokenizer/hf", "files": files,
            "sentencepiece_model": "tokenizer/tokenizer.model" if sentencepiece else None}


def _write_first_checkpoint(model: Transformer, cfg: TrainConfig, dataset: TokenDataset, run_dir: str) -> str:
    from train.trainer import Progress
    cpu = Runtime(0, 1, 0, torch.device("cpu"))
    optimizer = build_optimizer(model, cfg, cpu.device)
    initial_adamw_state(optimizer)
    loader = SequenceLoader(dataset, cfg.seq_len, cfg.global_batch_sequences, cfg.micro_batch_size)
    state = {**dataclasses.asdict(Progress()), "loader": loader.state_dict(), "world_size": 1}
    checkpointer = Checkpointer(os.path.join(run_dir, "checkpoints"), cfg.keep_checkpoints, cpu)
    return checkpointer.save(0, model, optimizer, state)


def import_hf(hf_dir: str, output: str, data: str, base: TrainConfig | None = None,
              overrides: dict[str, str] | None = None) -> dict:
    """Make `output` a run at step 0 holding the checkpoint in `hf_dir`, to be resumed on `data`; return a
    report. Refused, before anything is written, when the checkpoint or the dataset does not fit."""
    hf = read_hf_config(hf_dir)
    cfg = config_from_hf(hf, base or TrainConfig(name="imported"), overrides)
    check_no_overlap(output, [hf_dir])
    with hold_run_dir(output, data, True):
        from train.trainer import resolve_for_data
        dataset = TokenDataset(data, verify=True)
        cfg = resolve_for_data(cfg, dataset)
        check_dataset_tokenizer(hf_dir, dataset)
        model = load_model(cfg, hf_dir)
        prepare_run_dir(cfg, output, dataset, resume=False, is_main=True)
        tokenizer = copy_tokenizer(hf_dir, output)
        record_import(output, {"hf_dir": os.path.abspath(hf_dir), "dtype": hf.get("dtype") or hf.get("torch_dtype"),
                               "weights": [os.path.basename(p) for p in weight_files(hf_dir)], "tokenizer": tokenizer})
        checkpoint = _write_first_checkpoint(model, cfg, dataset, output)
    return {"checkpoint": checkpoint, "config": cfg, "parameters": sum(p.numel() for p in model.parameters()),
            "tokenizer": tokenizer}

"""Text from a trained run: load a checkpoint of the model and the run's SentencePiece tokenizer, then
continue a prompt greedily (temperature 0) or by seeded temperature / top-k sampling.

The checkpoint is read through `train.safe_reader`, which unpickles nothing but DCP's own bookkeeping,
so a crafted checkpoint cannot run code. The same run, prompt, settings and seed give the same text.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import sys
import time
from typing import Any

import torch

from train.checkpoint import latest_checkpoint, read_weights
from train.config import TrainConfig
from train.model import Transformer
from train.run_dir import load_run_config, load_run_info
from train.safe_reader import SafeFileSystemReader

TOKENIZER_FILE = "tokenizer.model"


@dataclasses.dataclass
class Generator:
    model: Transformer
    sp: Any                 # sentencepiece.SentencePieceProcessor
    checkpoint: str
    step: int

    @classmethod
    def from_run(cls, run_dir: str, tokenizer_dir: str | None = None, checkpoint: str | None = None) -> "Generator":
        """The run's latest checkpoint (or `checkpoint`) and its tokenizer (from run.json, or `tokenizer_dir`)."""
        import sentencepiece as spm
        cfg = _run_config(run_dir)
        if checkpoint is None:
            found = latest_checkpoint(os.path.join(run_dir, "checkpoints"))
            if found is None:
                raise FileNotFoundError(f"{run_dir}/checkpoints holds no complete checkpoint")
            checkpoint = found[1]
        with open(os.path.join(checkpoint, "trainer_state.json")) as f:
            step = int(json.load(f)["step"])
        model = Transformer(cfg)
        try:
            SafeFileSystemReader(checkpoint).read_metadata()   # a clean error before DCP wraps it in its own
        except pickle.UnpicklingError as exc:
            raise ValueError(f"{checkpoint}: {exc}") from None
        model.load_state_dict(read_weights(checkpoint, {k: v.shape for k, v in model.state_dict().items()}))
        model.eval()
        sp = spm.SentencePieceProcessor(model_file=_tokenizer_model(run_dir, tokenizer_dir))
        if sp.get_piece_size() > cfg.vocab_size:
            raise ValueError(f"the tokenizer has {sp.get_piece_size()} pieces, the model only {cfg.vocab_size}")
        return cls(model, sp, checkpoint, step)

    @torch.no_grad()
    def generate(self, prompt: str, max_new_tokens: int = 48, temperature: float = 0.0, top_k: int = 0,
                 seed: int = 0) -> dict[str, Any]:
        """Continue `prompt`; stops at EOS or after `max_new_tokens`. Temperature 0 is greedy."""
        if temperature < 0 or top_k < 0 or max_new_tokens < 1:
            raise ValueError("temperature and top_k must be >= 0 and max_new_tokens >= 1")
        prompt_ids = self.sp.encode(prompt)
        ids = ([self.sp.bos_id()] if self.sp.bos_id() >= 0 else []) + prompt_ids
        if not prompt_ids:
            raise ValueError("the prompt encodes to no tokens")
        gen = torch.Generator().manual_seed(seed)
        context, eos, new = self.model.cfg.seq_len, self.sp.eos_id(), []
        t0 = time.perf_counter()
        for _ in range(max_new_tokens):
            window = torch.tensor([(ids + new)[-context:]], dtype=torch.long)
            logits = self.model(window)[0, -1].float()
            nxt = _pick(logits, temperature, top_k, gen)
            if nxt == eos:
                break
            new.append(nxt)
        seconds = time.perf_counter() - t0
        text = self.sp.decode(prompt_ids + new)
        completion = text[len(prompt):] if text.startswith(prompt) else self.sp.decode(new)
        return {"prompt": prompt, "completion": completion, "text": text, "new_tokens": len(new),
                "temperature": temperature, "top_k": top_k, "seed": seed, "checkpoint_step": self.step,
                "tokens_per_second": round(len(new) / seconds, 1) if seconds > 0 else None}


def _pick(logits: torch.Tensor, temperature: float, top_k: int, gen: torch.Generator) -> int:
    if temperature == 0:
        return int(logits.argmax())
    if top_k:
        cut = torch.topk(logits, min(top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < cut, float("-inf"))
    probs = torch.softmax(logits / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=gen))


def _run_config(run_dir: str) -> TrainConfig:
    return dataclasses.replace(load_run_config(run_dir), device="cpu", compile="off", activation_checkpointing="none")


def _tokenizer_model(run_dir: str, tokenizer_dir: str | None) -> str:
    if tokenizer_dir is None:
        tokenizer_dir = load_run_info(run_dir).get("tokenizer", {}).get("path")
        if not tokenizer_dir:
            raise ValueError(f"{run_dir}/run.json names no tokenizer: pass the tokenizer directory")
    path = os.path.join(tokenizer_dir, TOKENIZER_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.generate", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="a run directory (config.json, run.json, checkpoints/)")
    p.add_argument("--tokenizer", help="tokenizer directory (default: the one the run's dataset was built with)")
    p.add_argument("--prompt", required=True)
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    gen = Generator.from_run(args.run, args.tokenizer)
    out = gen.generate(args.prompt, args.max_new_tokens, args.temperature, args.top_k, args.seed)
    print(out["text"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

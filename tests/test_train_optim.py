"""The paper's optimizer: which parameters decay, AdamW's settings, warmup then cosine to 10% of the peak."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from train.config import apply_overrides, preset
from train.model import Transformer
from train.optim import build_optimizer, decay_groups, learning_rate
from train.parallel import apply_activation_checkpointing


def test_matrices_decay_and_norm_gains_do_not():
    cfg = apply_overrides(preset("tiny"), {"vocab_size": "50"}).resolved()
    model = Transformer(cfg)
    apply_activation_checkpointing(model, "selective")       # wrapper prefixes do not change the rule
    decay, no_decay = decay_groups(model)
    assert set(no_decay) == {"norm.weight"} | {f"layers.{i}.{n}.weight" for i in range(cfg.n_layers)
                                               for n in ("attention_norm", "ffn_norm")}
    assert {"tok_embeddings.weight", "output.weight", "layers.0.attention.wq.weight",
            "layers.1.feed_forward.w2.weight"} <= set(decay)
    assert len(decay) == 2 + 7 * cfg.n_layers
    opt = build_optimizer(model, cfg, torch.device("cpu"))
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    assert all(g["betas"] == (0.9, 0.95) for g in opt.param_groups)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_schedule_warms_up_linearly_then_decays_by_cosine_to_a_tenth():
    cfg = preset("7b").resolved()
    peak, last = cfg.lr, cfg.max_steps - 1
    assert learning_rate(0, cfg) == pytest.approx(peak / 2000)
    assert learning_rate(999, cfg) == pytest.approx(peak / 2)
    assert learning_rate(1999, cfg) == pytest.approx(peak)
    assert learning_rate(2000, cfg) == pytest.approx(peak)
    middle = 2000 + (last - 2000) / 2
    assert learning_rate(int(middle), cfg) == pytest.approx(0.55 * peak, rel=1e-4)
    assert learning_rate(last, cfg) == pytest.approx(0.1 * peak)
    rates = [learning_rate(s, cfg) for s in range(2000, cfg.max_steps, 997)]
    assert all(a >= b for a, b in itertools.pairwise(rates))
    assert math.isclose(min(rates), 0.1 * peak, rel_tol=1e-3)

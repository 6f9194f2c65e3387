"""The LLaMA-1 architecture: Table 2's sizes, rotary on adjacent pairs, float32 norms, causality, no biases,
untied embeddings, and the three activation-checkpointing modes."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from train.config import apply_overrides, preset
from train.model import RMSNorm, Transformer, apply_rotary, clean_name, count_parameters, init_weights, rotary_tables
from train.parallel import apply_activation_checkpointing


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small(**overrides):
    cfg = apply_overrides(preset("tiny"), {"vocab_size": "97", **overrides})
    return cfg.resolved()


@pytest.mark.parametrize("name, table2, exact, hidden", [
    ("7b", 6.7, 6_738_415_616, 11008), ("13b", 13.0, 13_015_864_320, 13824),
    ("33b", 32.5, 32_528_943_616, 17920), ("65b", 65.2, 65_285_660_672, 22016)])
def test_parameter_counts_match_table_2(name, table2, exact, hidden):
    cfg = preset(name)
    n = count_parameters(cfg)
    assert cfg.hidden_dim == hidden
    assert n == exact                                   # the released checkpoints' counts
    assert math.floor(n / 1e8) / 10 == table2           # as Table 2 prints them


def test_paper_presets_have_paper_hyperparameters():
    for name, lr, tokens in (("7b", 3e-4, 1.0e12), ("13b", 3e-4, 1.0e12), ("33b", 1.5e-4, 1.4e12), ("65b", 1.5e-4, 1.4e12)):
        cfg = preset(name).resolved()
        assert (cfg.lr, cfg.global_batch_tokens, cfg.seq_len, cfg.vocab_size) == (lr, 4 * 2**20, 2048, 32000)
        assert (cfg.warmup_steps, cfg.min_lr_ratio, cfg.weight_decay, cfg.grad_clip) == (2000, 0.1, 0.1, 1.0)
        assert (cfg.beta1, cfg.beta2, cfg.norm_eps, cfg.rope_theta) == (0.9, 0.95, 1e-6, 10000.0)
        assert cfg.max_steps == math.ceil(tokens / 4 / 2**20)
    bench = preset("1.4b")
    assert (bench.dim, bench.n_layers, bench.n_heads) == (2048, 24, 16)
    assert 1.3e9 < count_parameters(bench) < 1.5e9 and 1.1e8 < count_parameters(preset("125m")) < 1.4e8


def test_no_biases_and_untied_embeddings():
    model = Transformer(small())
    names = [n for n, _ in model.named_parameters()]
    assert not [n for n in names if "bias" in n]
    assert model.output.weight.data_ptr() != model.tok_embeddings.weight.data_ptr()
    assert {"layers.0.attention.wq.weight", "layers.0.feed_forward.w3.weight", "layers.1.ffn_norm.weight"} <= set(names)


def test_rotary_rotates_adjacent_pairs_by_position_times_frequency():
    head_dim, theta = 8, 10000.0
    cos, sin = rotary_tables(5, head_dim, theta, torch.device("cpu"))
    x = torch.zeros(1, 5, 1, head_dim)
    x[..., 2] = 1.0                                      # first channel of the second pair
    y = apply_rotary(x, cos, sin)[0, :, 0]
    freq = theta ** (-2 / head_dim)
    for pos in range(5):
        expected = torch.zeros(head_dim)
        expected[2], expected[3] = math.cos(pos * freq), math.sin(pos * freq)
        assert torch.allclose(y[pos], expected, atol=1e-6)


def test_rotary_scores_depend_on_relative_position_only():
    cos, sin = rotary_tables(12, 16, 10000.0, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(16, generator=g), torch.randn(16, generator=g)

    def score(m, n):
        qs = torch.zeros(1, 12, 1, 16)
        ks = torch.zeros(1, 12, 1, 16)
        qs[0, m, 0], ks[0, n, 0] = q, k
        return (apply_rotary(qs, cos, sin)[0, m, 0] @ apply_rotary(ks, cos, sin)[0, n, 0]).item()

    assert score(7, 3) == pytest.approx(score(5, 1), abs=1e-5) == pytest.approx(score(11, 7), abs=1e-5)
    assert score(7, 3) != pytest.approx(score(7, 4), abs=1e-3)


def test_rmsnorm_computes_in_float32():
    norm = RMSNorm(64, 1e-6)
    norm.weight.data.uniform_(0.5, 1.5)
    x = (torch.randn(4, 64) * 100).to(torch.bfloat16)
    y = norm(x)
    x32 = x.float()
    expected = x32 / torch.sqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-6) * norm.weight
    assert y.dtype == torch.bfloat16
    assert torch.equal(y, expected.to(torch.bfloat16))


def test_attention_is_causal():
    cfg = small()
    model = Transformer(cfg)
    init_weights(model, cfg)
    tokens = torch.randint(0, cfg.vocab_size, (2, 16), generator=torch.Generator().manual_seed(1))
    changed = tokens.clone()
    changed[:, 10] = (changed[:, 10] + 1) % cfg.vocab_size
    a, b = model(tokens), model(changed)
    assert torch.equal(a[:, :10], b[:, :10])
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_initialisation_is_seeded_per_parameter():
    cfg = small()
    one, two, other = Transformer(cfg), Transformer(cfg), Transformer(dataclasses.replace(cfg, seed=1))
    for m, c in ((one, cfg), (two, cfg), (other, dataclasses.replace(cfg, seed=1))):
        init_weights(m, c)
    assert all(torch.equal(a, b) for a, b in zip(one.parameters(), two.parameters()))
    assert not torch.equal(one.layers[0].attention.wq.weight, other.layers[0].attention.wq.weight)
    assert torch.equal(one.norm.weight, torch.ones(cfg.dim))
    wo, wq = one.layers[0].attention.wo.weight, one.layers[0].attention.wq.weight
    assert wo.std().item() == pytest.approx(0.02 / math.sqrt(2 * cfg.n_layers), rel=0.1)
    assert wq.std().item() == pytest.approx(0.02, rel=0.1)


class OpCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.counts: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        self.counts[name] = self.counts.get(name, 0) + 1
        return func(*args, **(kwargs or {}))


def _backward_ops(mode: str):
    cfg = small(activation_checkpointing=mode)
    model = Transformer(cfg)
    apply_activation_checkpointing(model, mode)
    init_weights(model, cfg)
    tokens = torch.randint(0, cfg.vocab_size, (2, 16), generator=torch.Generator().manual_seed(2))
    loss = torch.nn.functional.cross_entropy(model(tokens).flatten(0, 1), tokens.flatten())
    with OpCounter() as counter:
        loss.backward()
    grads = {clean_name(n): p.grad.clone() for n, p in model.named_parameters()}
    return counter.counts, grads


def test_activation_checkpointing_modes_recompute_what_they_should():
    none_ops, none_grads = _backward_ops("none")
    full_ops, full_grads = _backward_ops("full")
    sel_ops, sel_grads = _backward_ops("selective")
    layers = small().n_layers
    attention = "_scaled_dot_product_flash_attention_for_cpu"
    # full recomputes each block's forward, matmuls and attention included (all but the last matmul,
    # w2, whose output nothing in the backward pass needs); selective keeps the outputs of the linear
    # layers and of attention and recomputes only the cheap ops: RMSNorm's rsqrt, rotary, SwiGLU's silu
    assert full_ops["mm"] == none_ops["mm"] + 6 * layers and full_ops[attention] == layers
    assert sel_ops["mm"] == none_ops["mm"] and attention not in sel_ops
    assert "rsqrt" not in none_ops and sel_ops["rsqrt"] == 2 * layers and sel_ops["silu"] == layers
    for name, g in none_grads.items():
        assert torch.allclose(full_grads[name], g, atol=1e-7) and torch.allclose(sel_grads[name], g, atol=1e-7)

"""Log-likelihood scoring checked by hand on a tiny model: the batched, padded scores equal one unpadded
forward pass per pair; the character-length and "Answer:" normalisations pick what the hand computation
picks; context truncation; batched greedy decoding equals decoding one prompt at a time; and the same
scores on CUDA when there is a GPU."""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from train.config import preset
from train.evaluation.generation import greedy_batch
from train.evaluation.scoring import LanguageModel, SentencePieceTokenizer, choice_scores, score_choices
from train.evaluation.tasks import ChoiceExample
from train.model import Transformer, init_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    import sentencepiece as spm
    root = tmp_path_factory.mktemp("tok")
    words = ["red", "green", "blue", "cat", "dog", "sat", "ran", "on", "the", "mat", "Answer:", "yes", "no"]
    lines = [" ".join(words[(i * k) % len(words)] for k in range(1, 9)) for i in range(300)]
    (root / "text.txt").write_text("\n".join(lines) + "\n")
    spm.SentencePieceTrainer.train(input=str(root / "text.txt"), model_prefix=str(root / "tokenizer"), vocab_size=60,
                                   model_type="bpe", bos_id=1, eos_id=2, unk_id=0, minloglevel=2)
    return SentencePieceTokenizer.from_file(str(root / "tokenizer.model"))


@pytest.fixture(scope="module")
def model():
    cfg = dataclasses.replace(preset("tiny"), vocab_size=64, seq_len=48, global_batch_tokens=48, max_steps=1,
                              warmup_steps=0, init_std=0.5).resolved()
    m = Transformer(cfg)
    init_weights(m, cfg)
    return m.eval()


def by_hand(model, tok, context: str, continuation: str) -> float:
    """log P(continuation | context): one unpadded forward pass over BOS + the whole text."""
    ctx, whole = tok.encode(context), tok.encode(context + continuation)
    shared = next((i for i, (a, b) in enumerate(zip(ctx, whole)) if a != b), min(len(ctx), len(whole)))
    shared = min(shared, len(whole) - 1)
    ids = torch.tensor([[1] + whole])
    with torch.no_grad():
        logprobs = F.log_softmax(model(ids[:, :-1]).float(), -1)[0]
    return sum(float(logprobs[p, ids[0, p + 1]]) for p in range(shared, len(whole)))


EXAMPLES = [
    ChoiceExample(("the red cat sat on",) * 3, (" the mat", " a dog that ran on the green mat", " no"), 0),
    ChoiceExample(("blue dog ran",) * 2, (" yes", " no"), 1),
    ChoiceExample(("the cat", "the green dog"), (" sat on the mat", " sat on the mat"), 1),
]


def test_batched_scores_equal_one_forward_pass_per_pair(model, tokenizer):
    pairs = [(c, x) for ex in EXAMPLES for c, x in zip(ex.contexts, ex.continuations)]
    expected = [by_hand(model, tokenizer, c, x) for c, x in pairs]
    for batch_size in (1, 3, 16):
        lm = LanguageModel(model, tokenizer, torch.device("cpu"), 48, batch_size)
        got = lm.loglikelihoods(pairs)
        assert got == pytest.approx(expected, abs=1e-4)
    assert len(set(round(v, 3) for v in expected)) == len(expected)      # the pairs really differ


@pytest.mark.parametrize("normalisation", ["chars", "unconditional", "none"])
def test_each_normalisation_picks_what_the_hand_computation_picks(model, tokenizer, normalisation):
    lm = LanguageModel(model, tokenizer, torch.device("cpu"), 48, 4)
    rows = score_choices(lm, EXAMPLES, normalisation)
    for ex, row in zip(EXAMPLES, rows):
        ll = [by_hand(model, tokenizer, c, x) for c, x in zip(ex.contexts, ex.continuations)]
        if normalisation == "chars":
            want = [v / len(x) for v, x in zip(ll, ex.continuations)]
        elif normalisation == "unconditional":
            want = [v - by_hand(model, tokenizer, "Answer:", x) for v, x in zip(ll, ex.continuations)]
        else:
            want = ll
        assert row["scores"] == pytest.approx(want, abs=1e-4)
        assert row["pick"] == max(range(len(want)), key=want.__getitem__)
        assert row["pick_unnormalised"] == max(range(len(ll)), key=ll.__getitem__)


def test_normalisations_can_disagree():
    ex = ChoiceExample(("q",) * 2, (" ab", " abcdefgh"), 0)
    assert choice_scores(ex, [-4.0, -6.0], None, "none") == [-4.0, -6.0]           # the short one
    assert choice_scores(ex, [-4.0, -6.0], None, "chars") == [-4 / 3, -6 / 9]        # the long one
    assert choice_scores(ex, [-4.0, -6.0], [-1.0, -5.5], "unconditional") == [-3.0, -0.5]
    with pytest.raises(ValueError, match="Answer:"):
        choice_scores(ex, [-4.0, -6.0], None, "unconditional")


def test_a_context_longer_than_the_window_is_cut_from_the_left(model, tokenizer):
    lm = LanguageModel(model, tokenizer, torch.device("cpu"), 16, 4)
    context = "the red cat sat on the mat " * 10
    ids, n_cont = lm.pair_tokens(context, " dog")
    assert len(ids) == 17 and ids[-n_cont:] == tokenizer.encode(context + " dog")[-n_cont:]
    assert lm.loglikelihoods([(context, " dog")])[0] < 0


def test_batched_greedy_decoding_equals_one_prompt_at_a_time(model, tokenizer):
    lm = LanguageModel(model, tokenizer, torch.device("cpu"), 48, 8)
    prompts = ["the red", "blue dog ran on the green", "cat"]
    together = greedy_batch(lm, prompts, max_new_tokens=6)
    alone = [greedy_batch(lm, [p], max_new_tokens=6)[0] for p in prompts]
    assert together == alone and any(together)
    ids = [1] + tokenizer.encode("the red")
    for _ in range(6):                       # the same greedy steps by hand
        with torch.no_grad():
            nxt = int(model(torch.tensor([ids]))[0, -1, :tokenizer.vocab_size].argmax())
        if nxt == 2:
            break
        ids.append(nxt)
    assert together[0] == tokenizer.decode(ids[1 + len(tokenizer.encode("the red")):]).split("\n")[0].strip()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_scores_match_cpu(model, tokenizer):
    pairs = [(c, x) for ex in EXAMPLES for c, x in zip(ex.contexts, ex.continuations)]
    cpu = LanguageModel(model, tokenizer, torch.device("cpu"), 48, 4)
    gpu = LanguageModel(copy.deepcopy(model).cuda(), tokenizer, torch.device("cuda"), 48, 4)
    assert gpu.loglikelihoods(pairs) == pytest.approx(cpu.loglikelihoods(pairs), abs=1e-3)
    assert greedy_batch(gpu, ["the red", "cat"], 4) == greedy_batch(cpu, ["the red", "cat"], 4)

import random

from pipeline.lines import hash_lines, line_hash, normalize_line
from pipeline.minhash import Signer, lsh_params


def test_ccnet_normalisation():
    assert normalize_line("  Hello, World! 2023  ") == "hello world 0000"
    assert normalize_line("Ｐｒｉｃｅ：１２３") == normalize_line("Ｐｒｉｃｅ１２３")
    assert normalize_line("Café") == "café"           # accents kept, as CCNet's code
    assert normalize_line("a\u0007b") == "ab"          # control characters dropped
    assert hash_lines(["Menu", "", "  MENU!  ", "---"]) == [line_hash("menu"), 0, line_hash("menu"), 0]


def test_lsh_parameters_follow_the_threshold():
    b8, r8 = lsh_params(0.8, 128)
    b5, r5 = lsh_params(0.5, 128)
    assert b8 * r8 <= 128 and b5 * r5 <= 128
    assert (1 / b8) ** (1 / r8) > (1 / b5) ** (1 / r5)


def words(rng, n):
    vocab = [f"w{i}" for i in range(5000)]
    return [rng.choice(vocab) for _ in range(n)]


def test_near_copies_share_a_band_and_strangers_do_not():
    rng = random.Random(1)
    signer = Signer(threshold=0.5)
    base = words(rng, 400)
    near = list(base)
    for i in rng.sample(range(400), 8):   # 2% of the words edited
        near[i] = "edited"
    other = words(rng, 400)
    a, b, c = (set(signer.band_keys(signer.signature(" ".join(t)))) for t in (base, near, other))
    assert a & b
    assert not a & c
    assert signer.signature("") is None
    assert (signer.signature("ONE two") == signer.signature("one  two")).all()

"""The Hugging Face form of a trained SentencePiece BPE model: a LlamaTokenizerFast directory that encodes
exactly as SentencePiece does.

The `tokenizers` pipeline mirrors SentencePiece step by step: the normalizer prepends the dummy-prefix
"▁" and turns every space into "▁" (SentencePiece's identity normalizer with add_dummy_prefix; no
pre-tokenizer, so whitespace runs and leading spaces survive untouched); the BPE model holds every piece
with its id and one merge per way of splitting a piece into two pieces, ranked by the piece's id (the
order of SentencePiece's merges); characters outside the vocabulary fall back to byte tokens. `<s>`,
`</s>` and `<unk>` written in text are text, as in SentencePiece (`split_special_tokens`), and `<s>` is
added in front when asked for special tokens, as LLaMA's tokenizer does.

Built from the SentencePiece processor's own API (pieces, ids, types), so no protobuf is needed. Every
file is written by this module, byte for byte the same for the same model.

transformers 5 rebuilds a LlamaTokenizer's pipeline from its vocabulary when it loads a directory (a
Metaspace pre-tokenizer, which does not add the dummy prefix to text that starts with a space); use
`load_hf_tokenizer`, which keeps the pipeline of tokenizer.json, where exact equality matters.
"""
from __future__ import annotations

import json
import os
import shutil

from pipeline.extras import optional_module

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
SPACE = "▁"
MAX_LENGTH = 2048


def _merges(sp, vocab: dict[str, int]) -> list[tuple[str, str]]:
    mergeable = {p for p, i in vocab.items() if not (sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i))}
    ranked = []
    for piece in mergeable:
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in mergeable and right in mergeable:
                ranked.append((vocab[piece], vocab[left], vocab[right], left, right))
    return [(left, right) for *_, left, right in sorted(ranked)]


def backend_tokenizer(model_file: str):
    """A `tokenizers.Tokenizer` that encodes and decodes as the SentencePiece model does."""
    import sentencepiece
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, processors
    from tokenizers.models import BPE

    sp = sentencepiece.SentencePieceProcessor(model_file=model_file)
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    if pieces[:3] != [UNK, BOS, EOS] or not sp.is_byte(sp.piece_to_id("<0x00>")):
        raise ValueError(f"{model_file}: not a LLaMA-style model (unk/bos/eos = 0/1/2 and byte fallback)")
    vocab = {p: i for i, p in enumerate(pieces)}
    tok = Tokenizer(BPE(vocab=vocab, merges=_merges(sp, vocab), unk_token=UNK, fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend(SPACE), normalizers.Replace(" ", SPACE)])
    tok.decoder = decoders.Sequence([decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B",
                                                       special_tokens=[(BOS, 1)])
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in (UNK, BOS, EOS)])
    tok.encode_special_tokens = True
    return tok


def _config() -> dict:
    special = {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                        "single_word": False, "special": True} for i, t in enumerate((UNK, BOS, EOS))}
    return {"tokenizer_class": "LlamaTokenizerFast", "add_bos_token": True, "add_eos_token": False,
            "bos_token": BOS, "eos_token": EOS, "unk_token": UNK, "pad_token": None,
            "added_tokens_decoder": special, "clean_up_tokenization_spaces": False, "legacy": True,
            "split_special_tokens": True, "model_max_length": MAX_LENGTH, "padding_side": "left",
            "sp_model_kwargs": {}}


def write_hf_tokenizer(model_file: str, directory: str) -> None:
    """tokenizer.json, tokenizer_config.json, special_tokens_map.json and a copy of tokenizer.model."""
    os.makedirs(directory, exist_ok=True)
    backend_tokenizer(model_file).save(os.path.join(directory, "tokenizer.json"))
    write_json(os.path.join(directory, "tokenizer_config.json"), _config())
    write_json(os.path.join(directory, "special_tokens_map.json"),
                {"bos_token": BOS, "eos_token": EOS, "unk_token": UNK})
    shutil.copyfile(model_file, os.path.join(directory, "tokenizer.model"))


def llama_tokenizer_fast():
    return optional_module("transformers", "hf", "the Hugging Face tokenizer directory").LlamaTokenizerFast


def load_hf_tokenizer(directory: str):
    """The directory as a LlamaTokenizerFast whose pipeline is exactly tokenizer.json's (FileNotFoundError,
    a usage error, naming the `hf` extra when transformers is not installed)."""
    from tokenizers import Tokenizer
    LlamaTokenizerFast = llama_tokenizer_fast()

    with open(os.path.join(directory, "tokenizer_config.json"), encoding="utf-8") as f:
        config = json.load(f)
    for key in ("tokenizer_class", "added_tokens_decoder", "sp_model_kwargs"):
        config.pop(key, None)
    backend = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
    tok = LlamaTokenizerFast(tokenizer_object=backend, **config)
    tok.backend_tokenizer.encode_special_tokens = True
    return tok


def write_json(path: str, data: dict) -> None:
    """`data` as sorted, indented UTF-8 JSON: the form of every JSON file of a tokenizer directory."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True, ensure_ascii=False)
        f.write("\n")

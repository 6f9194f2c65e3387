"""The trainer refuses impossible state up front: a checkpoint's trainer_state.json whose step, counters,
data cursor or world size no run of this configuration could have written, a shard whose files are shorter
or longer than dataset.json says (found when the dataset opens, not when training reaches it), and a token
id outside the dataset's vocabulary (found when its shard is first read, with the shard and offset)."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil

import numpy as np
import pytest

from tokenizer.shard_format import ShardFormatError, TokenDataset, write_token_dataset
from train.checkpoint import list_checkpoints
from train.config import apply_overrides, preset
from train.data import SequenceLoader
from train.synthetic import write_markov_dataset
from train.trainer import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")
STATE = os.path.join("checkpoints", "step-00000002", "trainer_state.json")


def tiny(**overrides):
    base = {"tensorboard": "false", "log_every": "1", "max_steps": "4", "warmup_steps": "1", "checkpoint_every": "2",
            "keep_checkpoints": "10", "seq_len": "32", "global_batch_tokens": "256", "micro_batch_size": "4"}
    return apply_overrides(preset("tiny"), {**base, **{k: str(v) for k, v in overrides.items()}})


@pytest.fixture(scope="module")
def markov(tmp_path_factory):
    return write_markov_dataset(str(tmp_path_factory.mktemp("markov")), 8_000, vocab_size=128, seed=0,
                                shard_tokens=2048)


@pytest.fixture(scope="module")
def stopped_run(markov, tmp_path_factory):
    """A run stopped at step 2 of 4, with its checkpoint: each test resumes a copy of it."""
    run = str(tmp_path_factory.mktemp("stopped") / "run")
    train(tiny(), markov["directory"], run, stop_at_step=2)
    return run


def tampered_copy(run: str, destination: str, change) -> str:
    shutil.copytree(run, destination)
    path = os.path.join(destination, STATE)
    with open(path) as f:
        state = json.load(f)
    change(state)
    with open(path, "w") as f:
        json.dump(state, f)
    return destination


def set_field(key: str, value):
    def change(state):
        *parents, last = key.split(".")
        for parent in parents:
            state = state[parent]
        state[last] = value
    return change


@pytest.mark.parametrize("key, value, message", [
    ("step", -5, "step -5 is not a non-negative integer"),
    ("step", 99, "step 99 is past the end of the run (max_steps 4)"),
    ("step", 3, "step 3 differs from the checkpoint directory's (step-00000002)"),
    ("step", "2", "step '2' is not a non-negative integer"),
    ("tokens", 100, "tokens 100 is not step 2 x global_batch_tokens 256"),
    ("bad_steps", 3, "bad_steps 3 exceeds step 2"),
    ("consecutive_bad_steps", 1, "consecutive_bad_steps 1 exceeds bad_steps 0"),
    ("train_seconds", float("nan"), "train_seconds nan is not a finite non-negative number"),
    ("measured_joules", -1.0, "measured_joules -1.0 is not a finite non-negative number"),
    ("world_size", 3, "world_size 3 cannot split the global batch of 8 sequences"),
    ("world_size", 0, "world_size 0 cannot split the global batch"),
    ("loader.cursor", 10**12, "loader.cursor 1000000000000 is not step 2 x 8 sequences per step"),
    ("loader.cursor", -16, "loader.cursor -16 is not a non-negative integer"),
    ("loader", None, "loader None is not a JSON object"),
])
def test_impossible_trainer_state_is_refused_on_resume(markov, stopped_run, tmp_path, key, value, message):
    run = tampered_copy(stopped_run, str(tmp_path / "run"), set_field(key, value))
    before = outputs(run)
    with pytest.raises(ValueError, match=re.escape(f"trainer_state.json: {message}")):
        train(tiny(), markov["directory"], run, resume=True)
    assert outputs(run) == before                   # no step ran: no checkpoint, metric or summary written


def outputs(run: str) -> dict[str, bytes]:
    """Every file the run wrote besides its configuration (which a resume rewrites as it was), by path."""
    found = {}
    for directory, _, names in os.walk(run):
        for name in names:
            path = os.path.join(directory, name)
            if name not in ("config.json", "run.json"):
                with open(path, "rb") as f:
                    found[os.path.relpath(path, run)] = f.read()
    return found


def test_missing_fields_and_broken_json_are_refused_on_resume(markov, stopped_run, tmp_path):
    run = tampered_copy(stopped_run, str(tmp_path / "missing"), lambda state: state.pop("world_size"))
    with pytest.raises(ValueError, match=re.escape("trainer_state.json: world_size None is missing")):
        train(tiny(), markov["directory"], run, resume=True)
    run = tampered_copy(stopped_run, str(tmp_path / "broken"), lambda state: None)
    with open(os.path.join(run, STATE), "w") as f:
        f.write('{"step": 2, ')
    with pytest.raises(ValueError, match="trainer_state.json: not valid JSON"):
        train(tiny(), markov["directory"], run, resume=True)


def test_a_sound_state_still_resumes(markov, stopped_run, tmp_path):
    run = str(tmp_path / "run")
    shutil.copytree(stopped_run, run)
    assert train(tiny(), markov["directory"], run, resume=True)["steps"] == 4
    assert [step for step, _ in list_checkpoints(os.path.join(run, "checkpoints"))] == [2, 4]


def test_the_loader_refuses_a_cursor_that_is_no_batch_start(markov):
    loader = SequenceLoader(TokenDataset(markov["directory"]), seq_len=32, global_batch=8, micro_batch=4)
    state = loader.state_dict()
    for cursor in (-8, 12, 8.0, True):
        with pytest.raises(ValueError, match=re.escape(f"data cursor {cursor!r} is not the start of a batch of 8")):
            loader.load_state_dict({**state, "cursor": cursor})
    loader.load_state_dict({**state, "cursor": 800})          # past the end: a later epoch, wraps around
    assert loader.cursor == 800 and loader.epoch > 1


def small_dataset(directory, vocab_size=64) -> str:
    docs = [("a", np.array([5 + i % 50] * 9 + [2], dtype=np.uint16)) for i in range(30)]
    return write_token_dataset(str(directory), docs, shard_tokens=64, vocab_size=vocab_size)


def test_a_truncated_shard_is_refused_when_the_dataset_opens(tmp_path):
    d = small_dataset(tmp_path / "ds")
    with open(tmp_path / "ds" / "shard-00003.bin", "r+b") as f:
        f.truncate(100)
    with pytest.raises(ShardFormatError, match=r"shard-00003\.bin: 100 bytes, but dataset\.json gives 64 tokens "
                                               r"\(128 bytes\)"):
        TokenDataset(d, verify=False)


def test_a_shard_index_of_the_wrong_size_is_refused_when_the_dataset_opens(tmp_path):
    d = small_dataset(tmp_path / "ds")
    with open(tmp_path / "ds" / "shard-00002.idx", "ab") as f:
        f.write(b"\0" * 8)
    with pytest.raises(ShardFormatError, match=r"shard-00002\.idx: \d+ bytes, but dataset\.json gives \d+ documents"):
        TokenDataset(d)
    os.remove(tmp_path / "ds" / "shard-00002.idx")
    with pytest.raises(ShardFormatError, match=r"shard-00002\.idx: No such file or directory"):
        TokenDataset(d)


def test_the_trainer_refuses_a_truncated_shard_before_its_first_step(tmp_path):
    d = small_dataset(tmp_path / "ds")
    with open(tmp_path / "ds" / "shard-00004.bin", "r+b") as f:
        f.truncate(0)
    with pytest.raises(ShardFormatError, match=r"shard-00004\.bin: 0 bytes"):
        train(tiny(), d, str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_num_tokens_must_match_the_shards(tmp_path):
    d = small_dataset(tmp_path / "ds")
    manifest = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    manifest["num_tokens"] += 64
    (tmp_path / "ds" / "dataset.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardFormatError, match=r"num_tokens 364 but the shards hold 300"):
        TokenDataset(d)


def plant_token(directory, shard: str, offset: int, token: int) -> None:
    """Overwrite one token and update the checksums, so that only the vocabulary check can notice."""
    path = os.path.join(directory, shard + ".bin")
    tokens = np.fromfile(path, dtype="<u2")
    tokens[offset] = token
    tokens.tofile(path)
    digest = hashlib.sha256(tokens.tobytes()).hexdigest()
    manifest_path = os.path.join(directory, "dataset.json")
    with open(manifest_path) as f:
        manifest = json.load(f)
    next(s for s in manifest["shards"] if s["name"] == shard)["sha256"]["bin"] = digest
    with open(manifest_path, "w") as f:
        json.dump(manifest, f)


def test_a_token_outside_the_vocabulary_names_its_shard_and_offset(tmp_path):
    d = small_dataset(tmp_path / "ds")
    plant_token(d, "shard-00002", 17, 64)
    ds = TokenDataset(d)
    assert ds.read(0, 128).max() < 64                                   # the other shards read
    with pytest.raises(ShardFormatError, match=r"shard-00002\.bin: token 64 at offset 17 is outside the "
                                               r"vocabulary of 64"):
        ds.read(128, 1)
    assert TokenDataset(d, verify=False).read(128 + 17, 1).tolist() == [64]   # trusted files are not checked


def test_the_trainer_stops_at_an_out_of_vocabulary_token_with_the_shard(tmp_path):
    d = small_dataset(tmp_path / "ds", vocab_size=128)
    plant_token(d, "shard-00000", 3, 500)
    with pytest.raises(ShardFormatError, match=r"shard-00000\.bin: token 500 at offset 3"):
        train(tiny(), d, str(tmp_path / "run"))

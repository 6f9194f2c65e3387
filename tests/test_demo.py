"""The demo's orchestration: stages skipped while up to date and re-run when they are not, the stage graph,
the mixture over the sources present, and the sample generation from a trained checkpoint."""
from __future__ import annotations

import dataclasses
import os
import pickle

import numpy as np
import pytest

from smallgiant import demo
from smallgiant.stages import Stage, run_stages, stale_reason


class Recorder:
    """Stages that write one file each and count their runs."""

    def __init__(self, root):
        self.root, self.runs = str(root), []

    def stage(self, name: str, after: tuple[str, ...] = (), params: dict | None = None, fail: bool = False) -> Stage:
        def run():
            self.runs.append(name)
            if fail:
                raise RuntimeError(f"{name} failed")
            with open(os.path.join(self.root, name + ".out"), "w") as f:
                f.write(name)
            return {"items": 1}
        return Stage(name, f"stage {name}", run, (name + ".out",), after, params or {})

    def run(self, stages: list[Stage], force: bool = False) -> list[str]:
        self.runs = []
        run_stages(self.root, stages, force, say=lambda _: None)
        return self.runs


def graph(r: Recorder, **params) -> list[Stage]:
    return [r.stage("a", params=params), r.stage("b", after=("a",)), r.stage("c")]


def test_second_run_skips_everything(tmp_path):
    r = Recorder(tmp_path)
    assert r.run(graph(r)) == ["a", "b", "c"]
    assert r.run(graph(r)) == []
    assert all(stale_reason(r.root, s) is None for s in graph(r))


def test_a_rerun_stage_reruns_what_reads_it(tmp_path):
    r = Recorder(tmp_path)
    r.run(graph(r))
    assert r.run([r.stage("a")], force=True) == ["a"]
    a, b = (os.path.join(r.root, ".stamps", f"{n}.json") for n in "ab")
    later = os.stat(b).st_mtime_ns + 10**9   # two stamps may share a clock tick: make a's visibly newer
    os.utime(a, ns=(later, later))
    assert stale_reason(r.root, graph(r)[1]) == "a ran again"
    assert r.run(graph(r)) == ["b"]


def test_changed_settings_missing_outputs_and_force(tmp_path):
    r = Recorder(tmp_path)
    r.run(graph(r))
    assert r.run(graph(r, size=2)) == ["a", "b"]
    os.remove(os.path.join(r.root, "c.out"))
    assert stale_reason(r.root, graph(r, size=2)[2]) == "c.out is missing"
    assert r.run(graph(r, size=2)) == ["c"]
    assert r.run(graph(r, size=2), force=True) == ["a", "b", "c"]


def test_a_failed_stage_leaves_no_stamp_and_stops_the_run(tmp_path):
    r = Recorder(tmp_path)
    with pytest.raises(RuntimeError, match="b failed"):
        r.run([r.stage("a"), r.stage("b", after=("a",), fail=True), r.stage("c", after=("b",))])
    assert r.runs == ["a", "b"]
    assert stale_reason(r.root, r.stage("b")) == "never ran"
    assert r.run([r.stage("a"), r.stage("b", after=("a",)), r.stage("c", after=("b",))]) == ["b", "c"]


def test_demo_graph_reads_only_earlier_stages(tmp_path):
    d = demo.Demo(str(tmp_path))
    stages = d.stages()
    names = [s.name for s in stages]
    assert len(names) == len(set(names))
    for i, s in enumerate(stages):
        assert set(s.after) <= set(names[:i]), s.name
    assert names[-1] == "report" and set(stages[-1].after) == set(names[:-1])
    assert {"cc", "tokenizer", "shards", "plan", "train", "generate"} <= set(names)
    assert {f"source_{n}" for n in d.sources} <= set(stages[names.index("tokenizer")].after)


def test_manifest_over_the_sources_present(tmp_path):
    full = demo.demo_manifest(str(tmp_path), list(demo.SOURCES))
    assert [s.name for s in full.sources] == ["commoncrawl", "c4", "github", "wikipedia", "books", "arxiv",
                                              "stackexchange"]
    part = demo.demo_manifest(str(tmp_path), ["wikipedia"])
    shares = {s.name: s.share for s in part.sources}
    assert shares == pytest.approx({"commoncrawl": 0.67 / 0.715, "wikipedia": 0.045 / 0.715})
    assert part.resolve("cc/docs/*.parquet") == os.path.join(str(tmp_path), "cc/docs/*.parquet")


def test_absent_source_is_reported_but_a_broken_one_raises(monkeypatch):
    real = demo.importlib.import_module

    def fake(name):
        if name == "pipeline.sources.books":
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
        if name == "pipeline.sources.arxiv":
            raise ModuleNotFoundError("No module named 'pylatexenc'", name="pylatexenc")
        return real(name)
    monkeypatch.setattr(demo.importlib, "import_module", fake)
    with pytest.raises(ModuleNotFoundError, match="pylatexenc"):
        demo.available_sources()
    monkeypatch.setattr(demo, "SOURCES", ("books", "wikipedia"))
    have, missing = demo.available_sources()
    assert have == ["wikipedia"] and missing == {"books": "no module pipeline.sources.books"}


# -- generation from a trained checkpoint ------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny model trained briefly on a text that repeats one sentence pattern, with its tokenizer."""
    import sentencepiece as spm

    from tokenizer.shard_format import write_token_dataset
    from train.config import preset
    from train.trainer import train
    root = tmp_path_factory.mktemp("gen")
    words = ["red", "green", "blue", "black", "white"]
    lines = [f"the {words[i % 5]} cat sat on the {words[(i * 3) % 5]} mat." for i in range(400)]
    (root / "text.txt").write_text("\n".join(lines) + "\n")
    (root / "tok").mkdir()
    spm.SentencePieceTrainer.train(input=str(root / "text.txt"), model_prefix=str(root / "tok" / "tokenizer"),
                                   vocab_size=64, model_type="bpe", bos_id=1, eos_id=2, unk_id=0, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(root / "tok" / "tokenizer.model"))
    docs = [("text", np.array(sp.encode(line) + [2], dtype=np.uint16)) for line in lines]
    write_token_dataset(str(root / "data"), docs, shard_tokens=1 << 14, vocab_size=64)
    cfg = dataclasses.replace(preset("tiny"), max_steps=60, warmup_steps=5, tensorboard=False, checkpoint_every=60,
                              log_every=60, device="cpu", lr=1e-2)
    train(cfg, str(root / "data"), str(root / "run"))
    return root


def test_generation_continues_the_learned_pattern_deterministically(trained_run):
    from train.generate import Generator
    gen = Generator.from_run(str(trained_run / "run"), str(trained_run / "tok"))
    assert gen.step == 60
    greedy = gen.generate("the red cat", max_new_tokens=8)
    assert greedy["text"].startswith("the red cat sat on the"), greedy
    assert greedy == {**gen.generate("the red cat", max_new_tokens=8), "tokens_per_second": greedy["tokens_per_second"]}
    a, b = (gen.generate("the", max_new_tokens=12, temperature=1.0, top_k=10, seed=3) for _ in range(2))
    assert a["text"] == b["text"] and a["new_tokens"] > 0
    with pytest.raises(ValueError, match="no tokens"):
        gen.generate("")


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_checkpoint_metadata_that_runs_code_is_refused(trained_run, tmp_path, capfd):
    import shutil

    from train.generate import Generator
    from train.checkpoint import latest_checkpoint
    step_dir = latest_checkpoint(str(trained_run / "run" / "checkpoints"))[1]
    bad = tmp_path / "step-00000060"
    shutil.copytree(step_dir, bad)
    (bad / ".metadata").write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(ValueError, match="refers to (posix|os).system"):
        Generator.from_run(str(trained_run / "run"), str(trained_run / "tok"), checkpoint=str(bad))
    assert "pwned" not in capfd.readouterr().out

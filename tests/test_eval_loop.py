"""Evaluation of trained models: a tiny CPU run with benchmarks in the loop writes their accuracy into
metrics.jsonl beside the validation loss; `smallgiant eval` scores the run directory and its Hugging Face
export alike, and exits 2 on a malformed task file or a wrong command line; the demo's continuation task
from held-out text; the configuration refuses in-loop evaluation it cannot run."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import numpy as np
import pytest
import torch

from smallgiant.cli import main
from train.config import apply_overrides, preset
from train.evaluation.continuation import make_examples
from train.evaluation.tasks import load_task

pytestmark = pytest.mark.usefixtures("one_torch_thread")
COLOURS = ["red", "green", "blue", "black", "white"]


def write_tasks(root):
    """BoolQ and PIQA files in their layouts, and NQ-open for the exact-match path."""
    os.makedirs(root / "boolq")
    os.makedirs(root / "piqa")
    os.makedirs(root / "naturalquestions")
    with open(root / "boolq" / "dev.jsonl", "w") as f:
        for i in range(6):
            f.write(json.dumps({"question": f"is the cat {COLOURS[i % 5]}", "passage": "the cat sat on the mat.",
                                "answer": i % 2 == 0}) + "\n")
    with open(root / "piqa" / "valid.jsonl", "w") as f:
        for i in range(8):
            f.write(json.dumps({"goal": f"the {COLOURS[i % 5]} cat", "sol1": "sat on the mat.",
                                "sol2": "mat the on sat."}) + "\n")
    (root / "piqa" / "valid-labels.lst").write_text("0\n" * 8)
    with open(root / "naturalquestions" / "NQ-open.dev.jsonl", "w") as f:
        f.write(json.dumps({"question": "where did the cat sit", "answer": ["on the mat"]}) + "\n")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained with boolq and piqa scored every 10 steps."""
    import sentencepiece as spm

    from tokenizer.shard_format import write_token_dataset
    from train.trainer import train
    root = tmp_path_factory.mktemp("evalrun")
    lines = [f"the {COLOURS[i % 5]} cat sat on the {COLOURS[(i * 3) % 5]} mat." for i in range(400)]
    (root / "text.txt").write_text("\n".join(lines) + "\n")
    (root / "tok").mkdir()
    spm.SentencePieceTrainer.train(input=str(root / "text.txt"), model_prefix=str(root / "tok" / "tokenizer"),
                                   vocab_size=64, model_type="bpe", bos_id=1, eos_id=2, unk_id=0, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(root / "tok" / "tokenizer.model"))
    sha = hashlib.sha256((root / "tok" / "tokenizer.model").read_bytes()).hexdigest()
    docs = [("text", np.array(sp.encode(line) + [2], dtype=np.uint16)) for line in lines]
    write_token_dataset(str(root / "data"), docs, shard_tokens=1 << 14, vocab_size=64, tokenizer_sha256=sha,
                        extra={"tokenizer": {"path": str(root / "tok"), "sha256": sha}})
    write_tasks(root / "tasks")
    cfg = dataclasses.replace(preset("tiny"), max_steps=30, warmup_steps=5, tensorboard=False, checkpoint_every=30,
                              log_every=10, device="cpu", lr=1e-2, eval_tasks="boolq,piqa", eval_every=10,
                              eval_data_dir=str(root / "tasks"), eval_limit=5)
    train(cfg, str(root / "data"), str(root / "run"))
    return root


def test_in_loop_evaluation_logs_accuracy_in_the_metrics(trained, capsys):
    with open(trained / "run" / "metrics.jsonl") as f:
        records = [json.loads(line) for line in f]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [10, 20, 30]
    for r in evals:
        assert set(r["accuracy"]) == {"boolq", "piqa"}
        assert r["tasks"]["boolq"]["n"] == 5 and r["tasks"]["piqa"]["n"] == 5
        assert r["tasks"]["boolq"]["normalisation"] == "unconditional"
        assert r["tasks"]["piqa"]["normalisation"] == "chars"
        assert all(0.0 <= a <= 1.0 for a in r["accuracy"].values())
    # the real ending of "the X cat" is the learned text, the shuffled one is not
    assert evals[-1]["accuracy"]["piqa"] == 1.0


def test_eval_command_on_the_run_and_its_hugging_face_export(trained, tmp_path, capsys):
    from train.export_hf import export_hf
    out = tmp_path / "results.json"
    rc = main(["eval", str(trained / "run"), "--tasks", "piqa,boolq,naturalquestions", "--data-dir",
               str(trained / "tasks"), "--batch-size", "3", "--output", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "piqa" in printed and "79.8" in printed and "Table 3" in printed     # the paper's 7B PIQA figure
    run_results = json.loads(out.read_text())
    assert run_results["model"]["step"] == 30 and run_results["model"]["kind"] == "run"
    piqa = run_results["tasks"]["piqa"]
    assert piqa["n"] == 8 and piqa["accuracy"] == 1.0 and piqa["paper"]["table"] == 3
    assert run_results["tasks"]["naturalquestions"]["metric"] == "exact_match"
    export_hf(str(trained / "run"), str(tmp_path / "hf"), dtype="float32")
    out_hf = tmp_path / "hf_results.json"
    assert main(["eval", str(tmp_path / "hf"), "--tasks", "piqa,boolq", "--data-dir", str(trained / "tasks"),
                 "--tokenizer", str(trained / "tok"), "--output", str(out_hf)]) == 0
    hf_results = json.loads(out_hf.read_text())
    assert hf_results["model"]["kind"] == "hugging_face"
    for task in ("piqa", "boolq"):
        assert hf_results["tasks"][task]["accuracy"] == run_results["tasks"][task]["accuracy"]


def test_eval_command_errors_exit_2(trained, tmp_path, capsys):
    bad = tmp_path / "bad"
    (bad / "boolq").mkdir(parents=True)
    (bad / "boolq" / "dev.jsonl").write_text('{"question": "q", "passage": "p"}\n')
    assert main(["eval", str(trained / "run"), "--tasks", "boolq", "--data-dir", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "dev.jsonl:1: no field 'answer'" in err and "BoolQ jsonl" in err
    assert main(["eval", str(trained / "run"), "--tasks", "piqa", "--data-dir", str(bad)]) == 2
    assert "piqa/valid.jsonl" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["eval", str(trained / "run"), "--tasks", "piqa", "--data-dir", str(trained / "tasks"),
                     "--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err
    for argv in (["--tasks", "nope"], ["--tasks", "piqa", "--limit", "0"], ["--tasks", "piqa", "--device", "tpu"]):
        with pytest.raises(SystemExit) as exit_:
            main(["eval", str(trained / "run"), "--data-dir", str(bad), *argv])
        assert exit_.value.code == 2


def test_in_loop_evaluation_settings_are_checked():
    base = preset("tiny")
    assert base.eval_every == 0                     # off by default
    with pytest.raises(ValueError, match="eval_tasks: unknown task 'bolq'"):
        apply_overrides(base, {"eval_every": "5", "eval_tasks": "bolq", "eval_data_dir": "x"}).validate()
    with pytest.raises(ValueError, match="eval_every needs eval_data_dir"):
        apply_overrides(base, {"eval_every": "5", "eval_tasks": "boolq"}).validate()
    with pytest.raises(ValueError, match="eval_limit must be"):
        apply_overrides(base, {"eval_limit": "-1"})


def test_continuation_task_from_held_out_documents(tmp_path):
    texts = [(f"s{i % 2}", " ".join(f"w{i}_{k}" for k in range(60))) for i in range(10)]
    texts.append(("s0", "too short to use"))
    examples = make_examples(texts, max_examples=8, seed=3)
    assert len(examples) == 8
    for ex in examples:
        doc = int(ex["ctx"].split()[0][1:].split("_")[0])
        true = " ".join(f"w{doc}_{k}" for k in range(32, 44))
        assert ex["ctx"] == " ".join(f"w{doc}_{k}" for k in range(32))
        assert ex["endings"][ex["label"]] == true and len(ex["endings"]) == 4
        others = [e for i, e in enumerate(ex["endings"]) if i != ex["label"]]
        assert sum(sorted(e.split()) == sorted(true.split()) for e in others) == 1      # the shuffled one
        assert sum(e.split()[0].split("_")[0] != f"w{doc}" for e in others) == 2      # two other documents
    (tmp_path / "continuation").mkdir()
    with open(tmp_path / "continuation" / "continuation.jsonl", "w") as f:
        f.writelines(json.dumps(e) + "\n" for e in examples)
    loaded = load_task("continuation", str(tmp_path))
    assert [ex.label for ex in loaded] == [e["label"] for e in examples]
    assert loaded[0].continuations[0] == " " + examples[0]["endings"][0]


def test_the_report_shows_the_demo_evaluation(tmp_path):
    from smallgiant.report import write_report
    (tmp_path / "eval").mkdir()
    task = {"accuracy": 0.8125, "accuracy_unnormalised": 0.75, "chance": 0.25, "n": 16, "metric": "accuracy",
            "normalisation": "chars", "shots": 0, "seconds": 1.5, "task": "continuation"}
    results = {"model": {"step": 300}, "tasks": {"continuation": task}}
    (tmp_path / "eval" / "results.json").write_text(json.dumps(results))
    report = write_report(str(tmp_path), [])
    assert report["evaluation"]["tasks"]["continuation"]["accuracy"] == 0.8125
    page = (tmp_path / "report.html").read_text()
    assert "picks the real ending 81.2% of the time; chance is 25.0%" in page
    assert "<td>continuation</td><td>16</td><td>81.2%</td><td>25.0%</td>" in page
    assert "No evaluation" not in page
    (tmp_path / "eval" / "results.json").unlink()
    write_report(str(tmp_path), [])
    assert "No evaluation: the eval stage did not run" in (tmp_path / "report.html").read_text()

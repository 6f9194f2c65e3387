"""The demo report's page: one self-contained HTML document (styles inline, plots inlined, no script,
nothing fetched). Every section is always present: a stage that did not run says so."""
from __future__ import annotations

import html
import json
from typing import Any

from smallgiant.report.collect import PAPER_GPU_HOURS, SECTIONS
from smallgiant.report.plots import (plot_bytes_per_token, plot_funnel, plot_languages, plot_loss, plot_mixture,
                                     plot_threshold)

STYLE = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em}section{margin:2em 0;border-top:1px solid #ddd}table{border-collapse:collapse;margin:.8em 0;
font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}img{max-width:100%}.note{color:#666}.missing{color:#a33}
pre{background:#f6f6f6;padding:.8em;white-space:pre-wrap}"""


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _num(x: Any, digits: int = 0) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and not x.is_integer() or digits:
        return f"{x:,.{digits}f}"
    return f"{int(x):,}"


def _table(head: list[str], rows: list[list[Any]]) -> str:
    th = "".join(f"<th>{_esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{b64}">'


def _missing(what: str) -> str:
    return f'<p class="missing">Not available: {_esc(what)} did not run in this demo directory.</p>'


def _overview(r: dict) -> str:
    t, g = r["training"], r["generation"]
    parts = [f"<p>Demo directory: <code>{_esc(r['demo_dir'])}</code>. Sources curated: "
             f"{_esc(', '.join(r['funnel']) or 'none')}.</p>"]
    if r.get("missing_sources"):
        parts.append("<p class='missing'>Not in this installation (left out of the mixture): "
                     + _esc(", ".join(f"{k} ({v})" for k, v in r["missing_sources"].items())) + "</p>")
    if t:
        parts.append(f"<p>The {_esc(t['config'])} model ({t['parameters']:,} parameters) went from a loss of "
                     f"{t['first_loss']:.3f} nats/token at the first logged step to {t['recent_loss']:.3f} on "
                     f"average over the last {t['recent_steps']} logged steps of {t['steps']} (a uniform guess "
                     f"scores {t['uniform_loss']:.3f}).</p>")
    for name, e in ((r.get("evaluation") or {}).get("tasks") or {}).items():
        parts.append(f"<p>On the {_esc(name)} task ({e['n']} held-out examples) it picks the real ending "
                     f"{100 * e['accuracy']:.1f}% of the time; chance is {100 * e['chance']:.1f}%.</p>")
    if g:
        parts.append(f"<p>Its continuation of <q>{_esc(g['prompt'])}</q> (temperature {g['temperature']}, "
                     f"seed {g['seed']}):</p><pre>{_esc(g['text'])}</pre>")
    return "".join(parts)


def _funnel_html(r: dict) -> str:
    f = r["funnel"]
    if not f:
        return _missing("no curation job")
    parts = [_img(plot_funnel(f), "bytes kept after each stage, per source")]
    for name, src in f.items():
        rows = [[s["stage"], _num(s["docs_in"]), _num(s["docs_out"]),
                 _num(s["bytes_in"] / 1e3, 1) if s.get("bytes_in") is not None else "",
                 _num(s["bytes_out"] / 1e3, 1)] for s in src["stages"]]
        parts.append(f"<h3>{_esc(name)}</h3>" + _table(["stage", "docs in", "docs out", "kB in", "kB out"], rows)
                     + f"<p class='note'>{src['documents_out']:,} of {src['documents_in']:,} documents kept, "
                       f"{src['dead_letters']:,} dead letters, {src['wall_seconds']:.1f} s.</p>")
    return "".join(parts)


def _languages_html(r: dict) -> str:
    f = r["funnel"]
    if not any(s["kept_languages"] or s["lid_languages"] for s in f.values()):
        return _missing("a job that records languages")
    head, rows = ["source", "documents kept"], [[name, _per_language(s["kept_languages"])] for name, s in f.items()]
    if any(s["lid_languages"] is not None for s in f.values()):
        head.append("documents reaching language ID")
        for row, s in zip(rows, f.values()):
            row.append(_per_language(s["lid_languages"]))
    parts = [_img(plot_languages(f), "documents kept per language and source")] \
        if any(s["kept_languages"] for s in f.values()) else []
    unknown = [name for name, s in f.items() if s["kept_languages"] is None]
    if unknown:
        parts.append(f"<p class='note'>No count of documents kept per language in the stats.json of "
                     f"{_esc(', '.join(unknown))}: not in the chart.</p>")
    return "".join(parts) + _table(head, rows)


def _per_language(counts: dict[str, int] | None) -> str:
    """`en 60, de 7`; "-" where the job counted nothing, "" where it does not count this at all."""
    if counts is None:
        return ""
    return ", ".join(f"{k} {v:,}" for k, v in counts.items()) or "-"


def _classifier_html(r: dict) -> str:
    c = r["classifier"]
    if c is None:
        return _missing("the classifier stage")
    rows = [[split, _num(m.get("roc_auc"), 3), _num(m["precision"], 3), _num(m["recall"], 3), _num(m["f1"], 3)]
            for split, m in (("validation", c["valid"]), ("test", c["test"]))]
    sizes = ", ".join(f"{k} {v['total']}" for k, v in c["split_sizes"].items())
    return (_img(plot_threshold(c["curve"], c["threshold"]), "precision, recall and keep rate against the threshold")
            + _table(["split", "ROC-AUC", "precision", "recall", "F1"], rows)
            + f"<p>{_esc(c['threshold_rule'])}</p><p class='note'>pages per split: {_esc(sizes)}; fastText "
              f"{_esc(json.dumps(c['params'], sort_keys=True))}</p>")


def _tokenizer_html(r: dict) -> str:
    t = r["tokenizer"]
    if t is None:
        return _missing("the tokenizer stage")
    rows = [[n, _num(s["documents"]), _num(s["bytes"] / 1e3, 1), _num(s["bytes_per_token"], 3)]
            for n, s in [("all", t["all"]), *t["sources"].items()]]
    langs = [[n, _num(s["documents"]), _num(s["bytes_per_token"], 3)] for n, s in t["languages"].items()]
    return (f"<p>SentencePiece BPE with LLaMA-1's settings, vocabulary {t['vocab_size']:,}, trained on "
            f"{t['training_bytes'] / 1e6:.2f} MB in {t['seconds']['total']:.1f} s.</p>"
            + _img(plot_bytes_per_token(t["sources"]), "bytes per token per source")
            + _table(["held-out source", "documents", "kB", "bytes/token"], rows)
            + _table(["language", "documents", "bytes/token"], langs))


def _mixture_html(r: dict) -> str:
    m = r["mixture"]
    if m is None:
        return _missing("the shard stage")
    rows = [[n, _num(s["tokens"]), f"{100 * s['share']:.2f}%", f"{100 * s['target_share']:.2f}%",
             _num(s["epochs"], 3), _num(s["target_epochs"], 2), f"{100 * s['max_shard_share_deviation']:.2f}%"]
            for n, s in m["sources"].items()]
    return (_img(plot_mixture(m["sources"]), "target and realised shares and epochs")
            + _table(["source", "tokens", "share", "target", "epochs", "target", "worst shard off by"], rows)
            + f"<p class='note'>{m['num_tokens']:,} tokens in {m['shards']} shards of {m['shard_tokens']:,}; "
              f"{m['bytes_per_token']} bytes per token.</p>")


def _training_html(r: dict) -> str:
    t, g = r["training"], r["generation"]
    if t is None:
        return _missing("the training stage")
    val = t.get("val_curves") or {}
    out = (_img(plot_loss(t), "training and validation loss against step")
           + ("<p class='note'>Training loss: the mean over each logged step's own batch, the documents the model is "
              "learning from. Validation loss (one curve per source): the mean over held-out documents of that "
              "source, which the shard job set aside and training never reads: a gap between the two is "
              "over-fitting.</p>" if val else "<p class='note'>No validation loss: the shards hold no held-out "
              "documents (val/).</p>")
           + _table(["model", "parameters", "layers", "width", "context", "vocabulary", "steps", "tokens",
                     "first loss", "recent loss", "final loss", "tokens/s"],
                    [[t["config"], _num(t["parameters"]), t["n_layers"], t["dim"], t["seq_len"], _num(t["vocab_size"]),
                      t["steps"], _num(t["tokens"]), _num(t["first_loss"], 3), _num(t["recent_loss"], 3),
                      _num(t["final_loss"], 3),
                      _num(t["tokens_per_second"])]]))
    if val:
        out += _table(["source", "validation loss, first", "last", "at step"],
                      [[s, _num(p[0]["loss"], 3), _num(p[-1]["loss"], 3), p[-1]["step"]] for s, p in val.items() if p])
    if g:
        out += (f"<h3>Sample</h3><p class='note'>checkpoint of step {g['checkpoint_step']}, temperature "
                f"{g['temperature']}, {g['new_tokens']} new tokens</p><pre>{_esc(g['text'])}</pre>")
    else:
        out += _missing("the generation stage")
    return out


def _evaluation_html(r: dict) -> str:
    """The training section's evaluation part (a note, not a missing section, when the stage did not run)."""
    e = r.get("evaluation")
    if e is None:
        return "<h3>Evaluation</h3><p class='note'>No evaluation: the eval stage did not run in this directory.</p>"
    rows = [[name, _num(t["n"]), f"{100 * t['accuracy']:.1f}%", f"{100 * t['chance']:.1f}%",
             f"{100 * t['accuracy_unnormalised']:.1f}%", t["normalisation"], _num(t["seconds"], 1)]
            for name, t in e["tasks"].items()]
    return ("<h3>Evaluation</h3><p>Each example is the first words of a held-out document (the shard job set it aside; training "
            "never read it) and four endings: its real next words, the same words shuffled, and the words at the "
            "same place in two other documents. The model picks the ending with the highest log-likelihood per "
            "character, as the LLaMA-1 paper scores its multiple-choice benchmarks (<code>smallgiant eval</code>)."
            f"</p><p class='note'>checkpoint of step {_esc(e['checkpoint_step'])}</p>"
            + _table(["task", "examples", "accuracy", "chance", "unnormalised", "normalisation", "seconds"], rows))


def _throughput_html(r: dict) -> str:
    if not r["stages"]:
        return _missing("any stage")
    rows = [[s["title"], _num(s["seconds"], 1), _num(s["items"]) if s["items"] else "", s["unit"] or "",
             _num(s["per_second"]) if s["per_second"] else ""] for s in r["stages"]]
    total = sum(s["seconds"] for s in r["stages"])
    return (_table(["stage", "wall s", "processed", "unit", "per second"], rows)
            + f"<p class='note'>{total:.1f} s in all, as each stage last ran (on this machine's cores).</p>")


def _energy_html(r: dict) -> str:
    e = r["energy"]
    run = e["run"]
    if run is None:
        here = _missing("the training stage")
    elif run["gpu_hours"]:
        here = (f"<p>This run: {run['gpu_hours']:.4f} GPU-hours on {_esc(run['device'])}: {run['estimated_kwh']:.4f} "
                f"kWh, {run['estimated_kg_co2eq']:.4f} kgCO2eq estimated"
                + (f"; {run['measured_kwh']:.4f} kWh measured by NVML" if run["measured_kwh"] is not None else "")
                + ".</p>")
    else:
        here = (f"<p>This run trained on the CPU for {run['train_seconds']:.1f} s: no GPU-hours, so the paper's "
                "estimate is 0 kWh and there is no NVML counter to read.</p>")
    rows = [[m, _num(PAPER_GPU_HOURS[m]), _num(v["kwh"] / 1e3, 0), _num(v["kg_co2eq"] / 1e3, 0)]
            for m, v in e["paper"].items()]
    return (here + f"<p>The same formula ({_esc(e['basis'])}) on LLaMA-1's GPU-hours:</p>"
            + _table(["model", "GPU-hours", "MWh", "tCO2eq"], rows))


def _plan_html(r: dict) -> str:
    p = r["plan"]
    if p is None:
        return _missing("the plan stage")
    rows = []
    for label, b in (("this demo", p["build"]), ("1.4T tokens, tokenization only", p["full_build"])):
        rows.append([label, _num(b["total_tokens"]), _num(b["unique_tokens"]), f"{b['text_bytes'] / 1e9:,.3f}",
                     _num(b["shards"]), f"{b['output_bytes'] / 1e9:,.3f}", _num(b["core_hours"], 1),
                     f"${b['dataflow_usd']['total']:,.2f}"])
    src = [[n, _num(s["budget_tokens"]), _num(s["unique_tokens"]), _num(s["epochs"], 2),
            f"{s['text_bytes'] / 1e9:,.1f}"] for n, s in p["full_sources"].items()]
    return (_table(["build", "tokens", "unique tokens", "text GB", "shards", "output GB", "core-hours",
                    "Dataflow cost"], rows)
            + f"<p class='note'>Encoding speed measured here: {p['build']['job_tokens_per_second_per_core']:,.0f} "
              "tokens/s per core; bytes per token per source measured on the demo's documents.</p>"
            + _table(["source (1.4T tokens)", "budget tokens", "unique tokens", "epochs", "text GB"], src)
            + _whole_build_html(p.get("whole_build")))


def _whole_build_html(w: dict | None) -> str:
    if w is None:
        return "<p class='note'>The whole build's plan (`smallgiant plan`) needs data_manifests/llama1.yaml.</p>"
    rows = [[ln["stage"], _esc(ln["work"]), "-" if ln["hours"] is None else f"{_num(ln['hours'])} {ln['unit']}",
             "-" if ln["usd"] is None else f"${ln['usd']:,.0f}", _esc(ln["basis"])] for ln in w["lines"]]
    t = w["totals"]
    return (f"<p>The whole recipe, every stage (<code>smallgiant plan --manifest data_manifests/llama1.yaml "
            f"--model {w['model']}</code>): curation, scoring and tokenization {_num(t['core_hours'])} core-hours "
            f"(${t['core_usd']:,.0f}); training {w['model']} {_num(t['gpu_hours'])} GPU-hours on {w['gpus']:,} "
            f"{_esc(w['gpu'])} ({w['days']:,.1f} days), {w['mwh']:,.0f} MWh, {w['tco2eq']:,.0f} tCO2eq:</p>"
            + _table(["stage", "work", "hours", "cost", "measured or assumed"], rows))


RENDERERS = {"overview": _overview, "funnel": _funnel_html, "languages": _languages_html,
             "classifier": _classifier_html, "tokenizer": _tokenizer_html, "mixture": _mixture_html,
             "training": lambda r: _training_html(r) + _evaluation_html(r), "throughput": _throughput_html,
             "energy": _energy_html, "plan": _plan_html}


def render_html(report: dict) -> str:
    body = "".join(f'<section id="{sid}"><h2>{_esc(title)}</h2>{RENDERERS[sid](report)}</section>'
                   for sid, title in SECTIONS)
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>smallgiant demo report</title>"
            f"<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; "
            f"style-src 'unsafe-inline'\"><style>{STYLE}</style></head><body><h1>smallgiant demo report</h1>"
            "<p class='note'>LLaMA-1's pretraining recipe end to end on the embedded samples.</p>"
            f"{body}</body></html>\n")

"""The demo report's plots: matplotlib figures returned as base64 PNG, to be inlined in the page."""
from __future__ import annotations

import base64
import io
import math

from pipeline.extras import optional_module


def pyplot():
    """matplotlib.pyplot on the Agg backend (the `report` extra)."""
    matplotlib = optional_module("matplotlib", "report", "the report's plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _figure(width: float = 7.0, height: float = 3.2, ncols: int = 1, nrows: int = 1):
    return pyplot().subplots(nrows, ncols, figsize=(width, height), squeeze=False)


def _png(fig) -> str:
    plt = pyplot()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def plot_funnel(funnel: dict) -> str:
    names = list(funnel)
    ncols = min(4, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig, axes = _figure(2.6 * ncols, 2.4 * nrows, ncols, nrows)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, names):
        rows = funnel[name]["stages"]
        start = rows[0]["bytes_out"] or 1
        kept = [100.0 * r["bytes_out"] / start for r in rows]
        ax.bar(range(len(rows)), kept, color="#4c72b0")
        ax.set_xticks(range(len(rows)), [r["stage"].replace("quality.", "q.") for r in rows], rotation=60,
                      ha="right", fontsize=7)
        ax.set_ylim(0, 105)
        ax.set_title(f"{name}: {rows[-1]['bytes_out'] / 1e3:,.0f} kB kept", fontsize=9)
        ax.set_ylabel("% of bytes read", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
    return _png(fig)


def kept_per_language(funnel: dict, top: int = 20) -> dict[str, dict[str, int]]:
    """Language -> source -> documents kept, for the `top` languages with the most documents kept (sources
    that did not count kept documents per language have none)."""
    langs: dict[str, dict[str, int]] = {}
    for name, f in funnel.items():
        for lang, n in (f["kept_languages"] or {}).items():
            langs.setdefault(lang, {})[name] = n
    order = sorted(langs, key=lambda lang: (-sum(langs[lang].values()), lang))[:top]
    return {lang: langs[lang] for lang in order}


def plot_languages(funnel: dict) -> str:
    langs = kept_per_language(funnel)
    order = list(langs)
    fig, axes = _figure(7.0, 3.0)
    ax = axes[0, 0]
    bottom = [0] * len(order)
    for name in funnel:
        heights = [langs[lang].get(name, 0) for lang in order]
        if any(heights):
            ax.bar(order, heights, bottom=bottom, label=name)
            bottom = [b + h for b, h in zip(bottom, heights)]
    ax.set_ylabel("documents kept")
    ax.legend(fontsize=7, ncol=2)
    return _png(fig)


def plot_threshold(curve: list[dict], threshold: float) -> str:
    fig, axes = _figure(6.0, 3.0)
    ax = axes[0, 0]
    t = [p["threshold"] for p in curve]
    for key, label in (("precision", "precision"), ("recall", "recall"), ("keep_rate", "share of pages kept")):
        ax.plot(t, [p[key] for p in curve], label=label)
    ax.axvline(threshold, color="k", linestyle="--", linewidth=1, label=f"threshold {threshold:.3f}")
    ax.set_xlabel("classifier score threshold (test split)")
    ax.set_ylim(-0.02, 1.05)
    ax.legend(fontsize=8)
    return _png(fig)


def plot_bytes_per_token(sources: dict) -> str:
    names = [n for n, r in sources.items() if r["bytes_per_token"]]
    fig, axes = _figure(6.0, 2.8)
    ax = axes[0, 0]
    ax.bar(names, [sources[n]["bytes_per_token"] for n in names], color="#55a868")
    ax.set_ylabel("bytes per token (held out)")
    ax.tick_params(axis="x", labelsize=8)
    return _png(fig)


def plot_mixture(sources: dict) -> str:
    names = list(sources)
    fig, axes = _figure(8.0, 3.0, ncols=2)
    x = range(len(names))
    for ax, (target, real, label) in zip(axes[0], (("target_share", "share", "share of tokens"),
                                                   ("target_epochs", "epochs", "epochs"))):
        ax.bar([i - 0.2 for i in x], [sources[n][target] for n in names], 0.4, label="target", color="#c4c4c4")
        ax.bar([i + 0.2 for i in x], [sources[n][real] for n in names], 0.4, label="realised", color="#4c72b0")
        ax.set_xticks(list(x), names, rotation=45, ha="right", fontsize=8)
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    return _png(fig)


def plot_loss(training: dict) -> str:
    fig, axes = _figure(6.5, 3.0)
    ax = axes[0, 0]
    curve = training["curve"]
    ax.plot([p["step"] for p in curve], [p["loss"] for p in curve], marker=".", label="training loss (its batch)")
    for source, points in training.get("val_curves", {}).items():
        ax.plot([p["step"] for p in points], [p["loss"] for p in points], marker="x", linestyle="--",
                label=f"validation loss, {source} (held-out documents)")
    ax.axhline(training["uniform_loss"], color="grey", linestyle=":",
               label=f"uniform guess ln {training['vocab_size']}")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.legend(fontsize=8)
    return _png(fig)


# -- html ------------------------------------------------------------------------------------------------

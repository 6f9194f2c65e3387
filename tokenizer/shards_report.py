"""What the shard job reports: realised against target shares and epochs per source (over the whole output
and in the worst full shard), and the job's summary (tokens, shards, speed) as printed at its end."""
from __future__ import annotations

from typing import Any


def mixture_report(shards: list[dict], plan: dict) -> dict[str, Any]:
    """Realised shares and epochs per source, over the whole output and in the worst full shard."""
    total = sum(s["tokens"] for s in shards)
    full = [s for s in shards if s["tokens"] == plan["shard_tokens"]] or shards
    out = {}
    for name, sp in plan["sources"].items():
        tokens = sum(s["sources"].get(name, 0) for s in shards)
        share = tokens / total if total else 0.0
        worst = max((abs(s["sources"].get(name, 0) / s["tokens"] - sp["share"]) for s in full if s["tokens"]),
                    default=0.0)
        out[name] = {"target_share": sp["share"], "share": round(share, 6),
                     "target_epochs": sp["target_epochs"],
                     "epochs": round(tokens / sp["available_tokens"], 6) if sp["available_tokens"] else 0.0,
                     "tokens": tokens, "available_tokens": sp["available_tokens"],
                     "documents": sp["available_documents"], "budget_tokens": sp["budget_tokens"],
                     "max_shard_share_deviation": round(worst, 6)}
    return out


def job_summary(manifest: dict, counters: dict[str, int], wall: float, cores: int | None) -> dict[str, Any]:
    encoded = sum(v for k, v in counters.items() if k.startswith("tokenize.") and k.endswith(".tokens"))
    text_bytes = sum(v for k, v in counters.items() if k.startswith("tokenize.") and k.endswith(".bytes"))
    return {"job": "shards", "num_tokens": manifest["num_tokens"], "num_documents": manifest["num_documents"],
            "shards": len(manifest["shards"]), "shard_tokens": manifest["shard_tokens"],
            "mixture": manifest["mixture"], "tokens_encoded": encoded, "text_bytes_encoded": text_bytes,
            "bytes_per_token": round(text_bytes / encoded, 4) if encoded else None,
            "encode_seconds": round(counters.get("tokenize.us", 0) / 1e6, 3),
            "wall_seconds": round(wall, 2), "cores": cores,
            "tokens_per_second": round(encoded / wall, 1) if wall else None,
            "tokens_per_second_per_core": round(encoded / wall / cores, 1) if wall and cores else None}


def format_summary(s: dict[str, Any]) -> str:
    lines = [f"{'source':<15}{'docs':>9}{'unique tok':>12}{'tokens':>12}{'share':>8}{'target':>8}"
             f"{'epochs':>8}{'target':>8}{'worst shard':>12}"]
    for name, m in s["mixture"].items():
        lines.append(f"{name:<15}{m['documents']:>9,}{m['available_tokens']:>12,}{m['tokens']:>12,}"
                     f"{m['share']:>8.2%}{m['target_share']:>8.2%}{m['epochs']:>8.3f}{m['target_epochs']:>8.2f}"
                     f"{m['max_shard_share_deviation']:>12.2%}")
    lines.append(f"{s['num_tokens']:,} tokens ({s['num_documents']:,} document copies) in {s['shards']} shards of "
                 f"{s['shard_tokens']:,}; encoded {s['tokens_encoded']:,} tokens "
                 f"({s['bytes_per_token'] or 0:.2f} bytes/token) in {s['wall_seconds']:.1f} s"
                 + (f": {s['tokens_per_second_per_core']:,.0f} tokens/s per core" if s["tokens_per_second_per_core"] else ""))
    return "\n".join(lines)

"""The demo report: figures collected from stage outputs the test writes, a self-contained HTML page, and
that page opened in a real headless Chromium (Debian's `chromium`) over the DevTools protocol: every
section shown, every plot decoded, nothing in the console."""
from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import time

import pytest

from pipeline.runtime.funnel import stage_funnel
from smallgiant.report import SECTIONS, collect, render_html, write_report
from smallgiant.report.plots import kept_per_language
from smallgiant.stages import Stage, write_stamp

SOURCES = ["commoncrawl", "wikipedia"]


def _write(root, rel: str, data) -> None:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        if rel.endswith(".jsonl"):
            f.writelines(json.dumps(r) + "\n" for r in data)
        else:
            json.dump(data, f)


def make_demo_dir(root) -> None:
    """Every output the report reads, in the formats the stages write, with known figures."""
    counters = {"read.records": 100, "read.docs_out": 98, "read.bytes_out": 200_000, "read.dead_letters": 2,
                "exact_dedup.rejected": 8, "exact_dedup.rejected_bytes": 16_000, "lid.rejected": 30,
                "lid.rejected_bytes": 50_000, "kept.docs": 60, "kept.bytes": 134_000, "language.en": 60,
                "language.de": 7}
    cc = {"job": "cc", **stage_funnel(counters, ["exact_dedup", "lid"], 4.0, 2)}
    cc["languages"], cc["kept_languages"] = {"en": 83, "de": 7}, {"en": 60}   # reaching language ID; kept
    _write(root, "cc/stats.json", cc)
    wiki = {"job": "wikipedia", **stage_funnel({**counters, "language.fr": 11}, ["exact_dedup", "lid"], 2.0, 2)}
    _write(root, "wikipedia/stats.json", wiki)
    curve = [{"threshold": t / 10, "precision": min(1.0, 0.5 + t / 10), "recall": 1 - t / 20, "keep_rate": 1 - t / 10,
              "kept": 10 - t} for t in range(11)]
    metrics = {"precision": 0.95, "recall": 0.8, "f1": 0.87, "roc_auc": 0.97, "kept": 8, "threshold": 0.6}
    _write(root, "refmodel/report.json", {
        "threshold": 0.6, "threshold_rule": "the lowest threshold with validation precision 0.9",
        "params": {"dim": 64}, "test": metrics, "valid": metrics, "keep_rate_curve": curve,
        "split_sizes": {s: {"total": n, "ref": n // 2, "random": n // 2} for s, n in (("train", 80), ("test", 10))}})
    row = {"documents": 5, "bytes": 10_000, "tokens": 2_500, "bytes_per_token": 4.0}
    _write(root, "tokenizer/report.json", {
        "vocab_size": 2048, "training_text": {"bytes": 300_000, "lines": 900},
        "seconds": {"sampling": 0.1, "training": 1.0, "total": 1.2},
        "held_out": {"all": row, "sources": {"commoncrawl": row, "wikipedia": {**row, "bytes_per_token": 3.5}},
                     "languages": {"en": row}}})
    mix = {name: {"target_share": share, "share": share + 0.01, "target_epochs": ep, "epochs": ep * 0.9,
                  "tokens": int(share * 50_000), "documents": 40, "max_shard_share_deviation": 0.002}
           for name, share, ep in (("commoncrawl", 0.8, 1.1), ("wikipedia", 0.2, 2.45))}
    _write(root, "shards/stats.json", {"mixture": mix, "num_tokens": 50_000, "shards": 1, "shard_tokens": 262_144,
                                       "bytes_per_token": 4.1, "tokens_per_second": 90_000.0})
    _write(root, "model/config.json", {"name": "tiny", "vocab_size": 2048, "seq_len": 64, "dim": 64, "n_layers": 2,
                                       "lr": 3e-3})
    _write(root, "model/metrics.jsonl", [{"kind": "step", "step": s, "loss": 7.5 - s / 10, "tokens_per_s": 20_000.0}
                                         for s in range(5, 55, 5)] + [{"kind": "summary"}])
    _write(root, "model/summary.json", {
        "parameters": 393_536, "steps": 50, "tokens": 51_200, "final_loss": 2.5, "train_seconds": 3.0,
        "device": "cpu", "gpu_hours": 0.0, "estimated_kwh": 0.0, "estimated_kg_co2eq": 0.0, "measured_kwh": None,
        "measured_kg_co2eq": None, "energy_basis": "GPU-hours x 400 W x PUE 1.1; 0.385 kgCO2eq/kWh"})
    _write(root, "generation.json", {"prompt": "The engineer", "text": "The engineer <b>repaired</b> the bridge.",
                                     "new_tokens": 6, "temperature": 0.8, "seed": 0, "checkpoint_step": 50})
    proj = {"total_tokens": 1_400_000_000_000, "unique_tokens": 1.2e12, "text_bytes": 5e12, "shards": 10_431,
            "output_bytes": 2.8e12, "core_hours": 550.0, "job_tokens_per_second_per_core": 600_000.0,
            "shuffle_gb": 10_000.0, "dataflow_usd": {"total": 170.0},
            "sources": {"commoncrawl": {"budget_tokens": 1, "unique_tokens": 1, "epochs": 1.1, "text_bytes": 4e12}}}
    src = {"files": 1, "documents": 60, "text_bytes": 134_000, "bytes_per_token": 4.0, "available_tokens": 33_500,
           "budget_tokens": 40_000, "target_epochs": 1.1, "epochs": 1.19}
    _write(root, "plan/plan.json", {"build": {**proj, "total_tokens": 50_000}, "full_build": proj,
                                    "sources": {"commoncrawl": src, "wikipedia": src}})
    for name, seconds, figures in (("cc", 4.5, {"items": 100, "unit": "documents"}),
                                   ("train", 3.2, {"items": 51_200, "unit": "tokens"})):
        write_stamp(str(root), Stage(name, f"the {name} stage", lambda: {}), seconds, figures)


def test_collect_reads_every_stage_output(tmp_path):
    make_demo_dir(tmp_path)
    r = collect(str(tmp_path), SOURCES)
    cc = r["funnel"]["commoncrawl"]
    assert [s["stage"] for s in cc["stages"]] == ["read", "exact_dedup", "lid"]
    assert cc["stages"][-1]["docs_out"] == 60 and cc["stages"][-1]["bytes_out"] == 134_000
    assert r["funnel"]["wikipedia"]["kept_languages"]["fr"] == 11
    assert r["funnel"]["commoncrawl"]["kept_languages"] == {"en": 60}
    assert r["classifier"]["test"]["roc_auc"] == 0.97
    assert r["tokenizer"]["sources"]["wikipedia"]["bytes_per_token"] == 3.5
    assert r["mixture"]["sources"]["commoncrawl"]["target_share"] == 0.8
    t = r["training"]
    assert t["first_loss"] == 7.0 and t["recent_loss"] == pytest.approx(sum(7.5 - s / 10 for s in range(5, 55, 5)) / 10)
    assert t["uniform_loss"] == pytest.approx(7.6246, abs=1e-4)
    assert {s["stage"]: s["per_second"] for s in r["stages"]} == {"cc": 22.2, "train": 16000.0}
    assert [s["stage"] for s in collect(str(tmp_path), SOURCES, ["train", "cc"])["stages"]] == ["train", "cc"]
    assert r["energy"]["paper"]["65B"]["kwh"] == pytest.approx(1_022_362 * 0.4 * 1.1)   # Table 15: 449 MWh
    assert r["plan"]["full_build"]["total_tokens"] == 1_400_000_000_000


def test_html_is_self_contained_and_escaped(tmp_path):
    make_demo_dir(tmp_path)
    page = render_html(collect(str(tmp_path), SOURCES))
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "<script" not in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 6    # funnel, languages, threshold, bytes per token, mixture, loss
    assert "&lt;b&gt;repaired&lt;/b&gt;" in page and "<b>repaired</b>" not in page
    for sid, title in SECTIONS:
        assert f'<section id="{sid}"><h2>{title}' in page.replace("&#x27;", "'")


def _languages_section(page: str) -> str:
    return re.search(r'<section id="languages">(.*?)</section>', page, re.S).group(1)


def _cc_stats(root, **languages) -> None:
    """A CC job's stats.json: 90 documents reach language ID, 25 of them are rejected there."""
    counters = {"read.records": 100, "read.docs_out": 100, "read.bytes_out": 300_000, "exact_dedup.rejected": 10,
                "exact_dedup.rejected_bytes": 30_000, "lid.rejected": 25, "lid.rejected_bytes": 75_000,
                "kept.docs": 65, "kept.bytes": 195_000}
    _write(root, "cc/stats.json", {"job": "cc", **stage_funnel(counters, ["exact_dedup", "lid"], 1.0, 2),
                                   **languages})


def test_languages_count_kept_documents_and_name_the_language_id_histogram(tmp_path):
    _cc_stats(tmp_path, languages={"en": 70, "de": 12, "fr": 8}, kept_languages={"en": 60, "de": 5})
    wiki = {"job": "wikipedia", **stage_funnel({"read.docs_out": 9, "kept.docs": 9, "language.fr": 9}, [], 1.0, 2)}
    _write(tmp_path, "wikipedia/stats.json", wiki)
    r = collect(str(tmp_path), SOURCES)
    cc = r["funnel"]["commoncrawl"]
    assert cc["kept_languages"] == {"en": 60, "de": 5}
    assert cc["lid_languages"] == {"en": 70, "de": 12, "fr": 8}
    assert r["funnel"]["wikipedia"]["lid_languages"] is None    # a source's language is not language ID's
    assert kept_per_language(r["funnel"]) == {"en": {"commoncrawl": 60}, "fr": {"wikipedia": 9},
                                              "de": {"commoncrawl": 5}}
    section = _languages_section(render_html(r))
    assert "<th>documents kept</th><th>documents reaching language ID</th>" in section
    assert "<td>commoncrawl</td><td>en 60, de 5</td><td>en 70, de 12, fr 8</td>" in section
    assert "<td>wikipedia</td><td>fr 9</td><td></td>" in section
    assert "data:image/png" in section and "No count of documents kept" not in section


def test_a_cc_stats_json_without_kept_languages_is_left_out_of_the_chart(tmp_path):
    _cc_stats(tmp_path, languages={"en": 70, "de": 20})
    r = collect(str(tmp_path), SOURCES)
    assert r["funnel"]["commoncrawl"]["kept_languages"] is None
    assert kept_per_language(r["funnel"]) == {}
    section = _languages_section(render_html(r))
    assert "data:image/png" not in section
    assert "No count of documents kept per language in the stats.json of commoncrawl" in section
    assert "<td>commoncrawl</td><td></td><td>en 70, de 20</td>" in section


def test_missing_stages_are_said_not_hidden(tmp_path):
    report = write_report(str(tmp_path), SOURCES, {"books": "no module pipeline.sources.books"})
    page = (tmp_path / "report.html").read_text()
    assert report["sections"] == [sid for sid, _ in SECTIONS]
    assert page.count("Not available:") == 9      # every section but the overview
    assert "books (no module pipeline.sources.books)" in page
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["missing_sources"] == {"books": "no module pipeline.sources.books"}


# -- the page in a real browser ---------------------------------------------------------------------------

class DevTools:
    """Chromium's DevTools protocol over --remote-debugging-pipe (fd 3 in, fd 4 out, NUL-separated JSON)."""

    def __init__(self, binary: str, profile: str):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
                f"--user-data-dir={profile}", "--no-first-run", "about:blank"]
        self.proc = subprocess.Popen(
            ["bash", "-c", f'exec "$@" 3<&{to_browser_r} 4>&{from_browser_w}', "bash", *args],  # dash: fds < 10 only
            pass_fds=(to_browser_r, from_browser_w), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buf, self._id, self.events = b"", 0, []

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._next(timeout)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30) -> dict:
        for ev in self.events:
            if ev.get("method") == method:
                return ev
        while True:
            ev = self._next(timeout)
            self.events.append(ev)
            if ev.get("method") == method:
                return ev

    def _next(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("no answer from chromium")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._to_browser)
        os.close(self._from_browser)


PAGE_FACTS = """JSON.stringify({
  sections: [...document.querySelectorAll('section')].map(s => ({id: s.id, title: s.querySelector('h2').textContent,
      visible: s.getBoundingClientRect().height > 0, missing: !!s.querySelector('.missing')})),
  images: [...document.images].map(i => ({complete: i.complete, width: i.naturalWidth}))})"""


def open_in_chromium(path: str, profile: str) -> tuple[dict, list[str]]:
    """The page's sections and images as the browser sees them, and every console or log problem."""
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    dt = DevTools(browser, profile)
    try:
        target = dt.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = dt.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            dt.send(f"{domain}.enable", session=session)
        dt.send("Page.navigate", {"url": f"file://{os.path.abspath(path)}"}, session=session)
        dt.wait_for("Page.loadEventFired")
        facts = dt.send("Runtime.evaluate", {"expression": PAGE_FACTS, "returnByValue": True}, session=session)
        facts = json.loads(facts["result"]["value"])
    finally:
        dt.close()
    problems = []
    for ev in dt.events:
        p = ev.get("params", {})
        if ev.get("method") == "Runtime.consoleAPICalled" and p["type"] in ("error", "warning", "assert"):
            problems.append(f"console.{p['type']}: {p['args']}")
        elif ev.get("method") == "Runtime.exceptionThrown":
            problems.append(f"exception: {p['exceptionDetails']}")
        elif ev.get("method") == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
            problems.append(f"log {p['entry']['level']}: {p['entry']['text']} {p['entry'].get('url', '')}")
    return facts, problems


def test_report_shows_every_section_in_chromium(tmp_path):
    make_demo_dir(tmp_path / "demo")
    write_report(str(tmp_path / "demo"), SOURCES)
    facts, problems = open_in_chromium(str(tmp_path / "demo" / "report.html"), str(tmp_path / "profile"))
    assert problems == []
    assert [(s["id"], s["title"]) for s in facts["sections"]] == list(SECTIONS)
    assert all(s["visible"] and not s["missing"] for s in facts["sections"])
    assert len(facts["images"]) == 6 and all(i["complete"] and i["width"] > 100 for i in facts["images"])


def test_chromium_check_sees_console_errors(tmp_path):
    """The browser check itself: a page with a broken image and a script error is caught."""
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><section id='x'><h2>x</h2></section><img src='missing.png'>"
                    "<script>console.error('boom'); undefinedFunction()</script></body></html>")
    _, problems = open_in_chromium(str(page), str(tmp_path / "profile"))
    assert any("boom" in p for p in problems)
    assert any("undefinedFunction" in p for p in problems)
    assert any("missing.png" in p for p in problems)


def test_the_plan_section_prices_the_whole_build_not_only_its_tokenization(tmp_path):
    from smallgiant.demo import _whole_build_plan
    make_demo_dir(tmp_path)
    plan_file = tmp_path / "plan" / "plan.json"
    plan = json.loads(plan_file.read_text())
    whole = _whole_build_plan()
    plan_file.write_text(json.dumps({**plan, "whole_build": whole}))
    page = render_html(collect(str(tmp_path), SOURCES))
    assert "1.4T tokens, tokenization only" in page and "full build" not in page
    assert f"{whole['totals']['gpu_hours']:,.0f} GPU-hours" in page and "train 7b" in page
    plan_file.write_text(json.dumps(plan))   # without it, the section says what is missing
    assert "needs data_manifests/llama1.yaml" in render_html(collect(str(tmp_path), SOURCES))

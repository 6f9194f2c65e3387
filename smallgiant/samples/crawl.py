"""A small synthetic crawl in CommonCrawl's WET format, for the demo and the tests.

Pages are made of sentences generated from small grammars in English, German, French and Spanish, so
every content line is unique unless planted. Planted on purpose, and listed in the returned truth:
per-site boilerplate (navigation, cookie notice, footer, copyright), exact copies of pages under other
URLs, near copies with a few words edited (some re-published on another site), and junk pages.
Deterministic for a given seed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import html
import random
import uuid

from pipeline.warc import gzip_member, warc_record_bytes

GRAMMAR = {
    "en": {
        "subj": ["the engineer", "our team", "the gardener", "a student", "the committee", "the old sailor",
                 "my neighbour", "the librarian", "a young doctor", "the village baker", "the pilot",
                 "the historian", "a careful reader", "the museum guide", "the farmer", "the council"],
        "verb": ["explained", "repaired", "described", "measured", "painted", "discovered", "planned",
                 "compared", "recorded", "borrowed", "examined", "delivered", "questioned", "organised"],
        "obj": ["the broken bridge", "a quiet garden", "the new schedule", "an ancient map", "the river path",
                "the winter harvest", "a small wooden boat", "the public library", "the mountain road",
                "the morning train", "a forgotten letter", "the city archive", "the local market"],
        "tail": ["before the storm arrived", "after a long discussion", "with great patience",
                 "during the summer festival", "for the children of the town", "without asking for help",
                 "because the weather was mild", "while everyone was asleep", "in less than a week",
                 "as the evening grew colder", "despite the heavy rain", "with the help of friends"],
        "pattern": "{subj} {verb} {obj} {tail}.",
    },
    "de": {
        "subj": ["der Ingenieur", "unser Team", "die Gärtnerin", "ein Student", "der Ausschuss",
                 "die Bibliothekarin", "der alte Seemann", "meine Nachbarin", "der Bäcker", "die Ärztin"],
        "verb": ["erklärte", "reparierte", "beschrieb", "vermaß", "entdeckte", "plante", "verglich",
                 "untersuchte", "lieferte", "organisierte"],
        "obj": ["die alte Brücke", "einen ruhigen Garten", "den neuen Fahrplan", "eine historische Karte",
                "den Weg am Fluss", "die Ernte im Winter", "ein kleines Holzboot", "die Stadtbibliothek"],
        "tail": ["bevor der Sturm kam", "nach einer langen Diskussion", "mit großer Geduld",
                 "während des Sommerfestes", "für die Kinder der Stadt", "ohne um Hilfe zu bitten",
                 "weil das Wetter mild war", "in weniger als einer Woche", "trotz des starken Regens"],
        "pattern": "{subj} {verb} {obj} {tail}.",
    },
    "fr": {
        "subj": ["l'ingénieur", "notre équipe", "la jardinière", "un étudiant", "le comité", "la bibliothécaire",
                 "le vieux marin", "ma voisine", "le boulanger du village", "la jeune médecin"],
        "verb": ["a expliqué", "a réparé", "a décrit", "a mesuré", "a découvert", "a préparé", "a comparé",
                 "a examiné", "a livré", "a organisé"],
        "obj": ["le vieux pont", "un jardin tranquille", "le nouvel horaire", "une carte ancienne",
                "le chemin de la rivière", "la récolte d'hiver", "un petit bateau en bois", "la bibliothèque"],
        "tail": ["avant l'arrivée de la tempête", "après une longue discussion", "avec beaucoup de patience",
                 "pendant la fête de l'été", "pour les enfants de la ville", "sans demander d'aide",
                 "parce que le temps était doux", "en moins d'une semaine", "malgré la pluie abondante"],
        "pattern": "{subj} {verb} {obj} {tail}.",
    },
    "es": {
        "subj": ["el ingeniero", "nuestro equipo", "la jardinera", "un estudiante", "el comité",
                 "la bibliotecaria", "el viejo marinero", "mi vecina", "el panadero del pueblo", "la doctora"],
        "verb": ["explicó", "reparó", "describió", "midió", "descubrió", "preparó", "comparó", "examinó",
                 "entregó", "organizó"],
        "obj": ["el puente viejo", "un jardín tranquilo", "el nuevo horario", "un mapa antiguo",
                "el camino del río", "la cosecha de invierno", "un pequeño barco de madera", "la biblioteca"],
        "tail": ["antes de que llegara la tormenta", "después de una larga discusión", "con mucha paciencia",
                 "durante la fiesta del verano", "para los niños de la ciudad", "sin pedir ayuda",
                 "porque el tiempo era suave", "en menos de una semana", "a pesar de la lluvia intensa"],
        "pattern": "{subj} {verb} {obj} {tail}.",
    },
}
BOILERPLATE = ["Home | About | Contact | Archive", "We use cookies to improve your experience. Accept all cookies",
               "Subscribe to our newsletter for weekly updates", "Share this page: Facebook Twitter Email",
               "Copyright {year} {site}. All rights reserved."]


@dataclasses.dataclass
class SamplePage:
    id: str
    url: str
    lang: str
    text: str
    kind: str = "clean"          # clean | exact | near | junk
    original: str | None = None  # id of the page it copies
    boilerplate: list[str] = dataclasses.field(default_factory=list)


def sentence(rng: random.Random, lang: str, used: set[str], tries: int = 8) -> str:
    """A sentence not used before while the grammar has new ones at hand; then one used before (pages
    stay distinct: their sentences are drawn in a new order)."""
    g = GRAMMAR[lang]
    for _ in range(tries):
        s = g["pattern"].format(**{k: rng.choice(g[k]) for k in ("subj", "verb", "obj", "tail")})
        s = s[0].upper() + s[1:]
        if s not in used:
            used.add(s)
            return s
    return s


def paragraph(rng: random.Random, lang: str, used: set[str]) -> str:
    """Three to five sentences of `lang` on one line."""
    return " ".join(sentence(rng, lang, used) for _ in range(rng.randint(3, 5)))


def _edit(rng: random.Random, text: str, frac: float) -> str:
    lines = text.split("\n")
    body = [i for i, ln in enumerate(lines) if len(ln.split()) > 8]
    n_edits = max(1, int(frac * sum(len(lines[i].split()) for i in body)))
    for _ in range(n_edits):
        i = rng.choice(body)
        words = lines[i].split()
        j = rng.randrange(len(words))
        words[j] = rng.choice(["really", "quite", "indeed", "also", "very"])
        lines[i] = " ".join(words)
    return "\n".join(lines)


def record_id(rng: random.Random) -> str:
    """A WARC-Record-ID (`<urn:uuid:...>`) drawn from `rng`."""
    return f"<urn:uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}>"


def make_pages(seed: int = 0, n_sites: int = 8, pages_per_lang: dict | None = None) -> list[SamplePage]:
    rng = random.Random(seed)
    counts = pages_per_lang or {"en": 48, "de": 8, "fr": 8, "es": 6}
    sites = [f"site{i}.example.org" for i in range(n_sites)]
    templates = {s: [b.format(year=2020 + i, site=s) + ("" if b.startswith("Copyright") else f" - {s.split('.')[0]}")
                     for b in BOILERPLATE] for i, s in enumerate(sites)}
    used: set[str] = set()
    pages: list[SamplePage] = []
    for lang, n in counts.items():
        for k in range(n):
            site = sites[rng.randrange(n_sites)]
            title = sentence(rng, lang, used).rstrip(".")
            body = [paragraph(rng, lang, used) for _ in range(rng.randint(2, 4))]
            bp = templates[site] if rng.random() < 0.8 else []
            text = "\n".join([title] + bp[:3] + body + bp[3:])
            pages.append(SamplePage(record_id(rng), f"https://{site}/{lang}/page-{k}", lang, text, boilerplate=bp))
    originals = [p for p in pages if p.lang == "en"]
    for p in rng.sample(originals, 6):
        pages.append(SamplePage(record_id(rng), p.url.replace("https://", "http://www."), p.lang, p.text, "exact", p.id,
                                p.boilerplate))
    for p in rng.sample(originals, 6):
        other = sites[rng.randrange(n_sites)]
        text = _edit(rng, p.text, 0.02)
        for old, new in zip(p.boilerplate, templates[other]):
            text = text.replace(old, new)
        pages.append(SamplePage(record_id(rng), f"https://{other}/mirror/{p.url.rsplit('/', 1)[1]}", p.lang, text,
                                "near", p.id, templates[other] if p.boilerplate else []))
    for k in range(4):
        links = "\n".join(f"Archive {m} 20{10 + k}" for m in ("January", "February", "March", "April", "May"))
        pages.append(SamplePage(record_id(rng), f"https://links.example.net/{k}", "en", links, "junk"))
    rng.shuffle(pages)
    # copies come after their original in the crawl, as they do in the wild
    order = {p.id: i for i, p in enumerate(pages)}
    pages.sort(key=lambda p: (order[p.original] + 0.5) if p.original else order[p.id])
    return pages


def wet_bytes(pages: list[SamplePage], date: str = "2023-01-30T12:00:00Z") -> bytes:
    """The pages as a gzip-per-record WET file: a warcinfo record, then one conversion record per page."""
    info = b"software: smallgiant.samples.crawl\r\nisPartOf: SAMPLE\r\n"
    out = [gzip_member(warc_record_bytes([("WARC-Type", "warcinfo"), ("WARC-Date", date),
                                          ("WARC-Record-ID", "<urn:uuid:00000000-0000-4000-8000-000000000000>"),
                                          ("Content-Type", "application/warc-fields")], info))]
    for p in pages:
        block = (p.text + "\n").encode("utf-8")
        digest = "sha1:" + hashlib.sha1(block).hexdigest()
        headers = [("WARC-Type", "conversion"), ("WARC-Target-URI", p.url), ("WARC-Date", date),
                   ("WARC-Record-ID", p.id), ("WARC-Block-Digest", digest), ("Content-Type", "text/plain")]
        out.append(gzip_member(warc_record_bytes(headers, block)))
    return b"".join(out)


def write_sample(path: str, seed: int = 0, **kwargs) -> list[SamplePage]:
    pages = make_pages(seed, **kwargs)
    with open(path, "wb") as f:
        f.write(wet_bytes(pages))
    return pages


def warc_bytes(pages: list[SamplePage], date: str = "2023-01-30T12:00:00Z") -> bytes:
    """The same pages as a WARC file of HTTP responses with HTML bodies (one paragraph per <p>)."""
    out = []
    for p in pages:
        lines = p.text.split("\n")
        paras = "".join(f"<p>{html.escape(ln)}</p>\n" for ln in lines[1:])
        body = (f"<!DOCTYPE html><html lang=\"{p.lang}\"><head><meta charset=\"utf-8\"><title>{html.escape(lines[0])}"
                f"</title><script>var tracking = 1;</script></head><body><article><h1>{html.escape(lines[0])}</h1>\n"
                f"{paras}</article></body></html>").encode("utf-8")
        payload = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                   + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        headers = [("WARC-Type", "response"), ("WARC-Target-URI", p.url), ("WARC-Date", date),
                   ("WARC-Record-ID", p.id), ("Content-Type", "application/http; msgtype=response")]
        out.append(gzip_member(warc_record_bytes(headers, payload)))
    return b"".join(out)

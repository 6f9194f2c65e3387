"""Documents the tokenizer tests make: several sources in the document schema, in many scripts (Latin with
accents, Cyrillic, CJK, kana), with code indented by spaces and tabs, numbers, emoji and combining marks.
Deterministic for a seed."""
from __future__ import annotations

import os
import random

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.schema import DOC_SCHEMA, Document

WORDS = {
    "en": "the of and to in is that for it with as was on be by this are from or have an not which at but all "
          "their were has one more can about other been would there many time some new most these people such "
          "first year between through government number during without country before however system".split(),
    "de": "der die und das ist nicht für über müssen Straße größer Mädchen schön Bücher würde Gebäude gemäß "
          "Stadt Jahr Regierung zwischen während ohne Land jedoch System Menschen Zeit".split(),
    "fr": "le la les des est une pour être été où très déjà français élève garçon Noël façon année pays "
          "gouvernement pendant sans système personnes temps".split(),
    "ru": "и в не на что быть с он по это как год она к так мы все для государство время система страна "
          "человек между после однако".split(),
    "zh": list("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可里后"),
    "ja": list("あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん日本語学校東京"),
}
CODE = ["def {a}({b}):", "    return {b} + {n}", "\tif {a} > {n}:", "\t\t{b} = [{n}, {n}, {n}]", "class {A}:",
        "        self.{a} = {{'{b}': {n}}}", "for i in range({n}):", "    print(f\"{{i}}: {a}\")", "# {a} {b}", "}}"]
EXTRAS = ["🙂", "🚀", "👍🏽", "e\u0301", "n\u0303", "—", "«", "»", "€", "½", "™"]


def paragraph(rng: random.Random, lang: str) -> str:
    words = WORDS[lang]
    n = rng.randint(8, 60)
    if lang in ("zh", "ja"):
        body = "".join(rng.choice(words) for _ in range(n))
        return body + rng.choice("。！？") + (f" {rng.randint(1, 2030)}年" if rng.random() < 0.5 else "")
    out = []
    for i in range(n):
        r = rng.random()
        if r < 0.08:
            out.append(str(rng.randint(0, 10 ** rng.randint(1, 7))))
        elif r < 0.11:
            out.append(rng.choice(EXTRAS))
        else:
            w = rng.choice(words)
            out.append(w.capitalize() if i == 0 or r > 0.97 else w)
    sep = "  " if rng.random() < 0.1 else " "
    return sep.join(out) + rng.choice([".", ".", "!", "?", ":"])


def code_file(rng: random.Random) -> str:
    names = ["value", "items", "count", "parse", "tokens", "result", "buffer", "offset"]
    lines = []
    for _ in range(rng.randint(5, 40)):
        a, b = rng.sample(names, 2)
        lines.append(rng.choice(CODE).format(a=a, b=b, A=a.capitalize(), n=rng.randint(0, 4096)))
    return "\n".join(lines) + "\n"


def make_documents(source: str, n: int, langs: list[str] | None, seed: int = 0) -> list[Document]:
    rng = random.Random(f"{source}:{seed}")
    docs = []
    for i in range(n):
        if langs is None:
            text, meta = code_file(rng), {}
        else:
            lang = rng.choice(langs)
            text = "\n".join(paragraph(rng, lang) for _ in range(rng.randint(1, 8))) + "\n"
            meta = {"language": lang}
        docs.append(Document(id=f"{source}-{i:05d}", url=f"https://{source}.example/{i}", source=source,
                             text=text, metadata=meta))
    return docs


def write_parquet(path: str, docs: list[Document], row_group_size: int = 64) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    table = pa.Table.from_pylist([d.to_row() for d in docs], schema=DOC_SCHEMA)
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


SOURCES = {  # source: (share, documents, languages (None: code))
    "web": (0.6, 300, ["en", "de", "fr", "ru", "zh", "ja"]),
    "code": (0.25, 120, None),
    "wiki": (0.15, 150, ["en", "de", "ru"]),
}


def make_corpus(root: str, scale: float = 1.0, seed: int = 0) -> str:
    """Parquet files of three sources under `root` and a manifest naming them; the manifest's path."""
    lines = ["name: testmix", f"seed: {seed}", "sources:"]
    for source, (share, n, langs) in SOURCES.items():
        docs = make_documents(source, max(1, int(n * scale)), langs, seed)
        half = len(docs) // 2
        write_parquet(os.path.join(root, source, "part-0.parquet"), docs[:half])
        write_parquet(os.path.join(root, source, "part-1.parquet"), docs[half:])
        lang_line = f", languages: [{', '.join(langs)}]" if langs else ""
        lines.append(f"  {source}: {{share: {share}, epochs: 1.0, paths: [\"{source}/*.parquet\"]{lang_line}}}")
    path = os.path.join(root, "mix.yaml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path

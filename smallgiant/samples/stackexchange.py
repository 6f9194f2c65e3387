"""A small Stack Exchange sample in the dumps' own format, generated from a seed.

A directory of 30 sites: `<site>.7z` archives holding Posts.xml with Users.xml and Comments.xml beside
it (as archive.org's do), Stack Overflow as `stackoverflow.com-Posts.7z` (with a `-Users.7z` the job
ignores), one site extracted as `<site>/Posts.xml`, and a small meta site. The two smallest sites fall
outside the 28 largest. Posts are HTML with paragraphs, inline code, code blocks, nested lists, links and
entities.

Planted: answers scored "10" and "9" (and negative, and tied), tag wikis and other post types, an
answer whose question is not in the dump, a question without answers, both tag formats, a row that is
not well-formed XML, a row whose Score is not a number, bytes that are not UTF-8, and posts of one thread
written far apart in the file.
"""
from __future__ import annotations

import os
import random
from xml.sax.saxutils import quoteattr

from smallgiant.samples.crawl import sentence

SITES = ["stackoverflow.com", "math.stackexchange.com", "superuser.com", "askubuntu.com", "serverfault.com",
         "tex.stackexchange.com", "unix.stackexchange.com", "stats.stackexchange.com",
         "physics.stackexchange.com", "english.stackexchange.com", "electronics.stackexchange.com",
         "gaming.stackexchange.com", "apple.stackexchange.com", "softwareengineering.stackexchange.com",
         "mathoverflow.net", "gis.stackexchange.com", "salesforce.stackexchange.com", "dba.stackexchange.com",
         "wordpress.stackexchange.com", "codereview.stackexchange.com", "diy.stackexchange.com",
         "security.stackexchange.com", "scifi.stackexchange.com", "ell.stackexchange.com",
         "rpg.stackexchange.com", "cooking.stackexchange.com", "bicycles.stackexchange.com",
         "travel.stackexchange.com", "chess.stackexchange.com", "woodworking.stackexchange.com"]
EXTRACTED = "cooking.stackexchange.com"
META = "meta.stackexchange.com"
TAGS = ["python", "lists", "linux", "bash", "probability", "latex", "networking", "sql", "git", "regex"]
FIXED_TIME = 1_600_000_000.0


def _code(rng: random.Random) -> str:
    name = rng.choice(["total", "items", "count", "result"])
    return (f"def compute_{name}(values):\n    {name} = 0\n    for value in values:\n"
            f"        if value &gt; {rng.randint(1, 9)}:\n            {name} += value\n\n    return {name}\n")


def _body(rng: random.Random, used: set[str], kind: str) -> str:
    parts = [f"<p>{sentence(rng, 'en', used)} {sentence(rng, 'en', used)}</p>"]
    r = rng.random()
    if r < 0.4:
        parts.append(f"<p>I call <code>compute()</code> like this &amp; it fails:</p>\n<pre><code>{_code(rng)}</code></pre>")
    elif r < 0.7:
        items = "".join(f"<li>{sentence(rng, 'en', used)}</li>" for _ in range(rng.randint(2, 3)))
        nested = f"<ul><li>{sentence(rng, 'en', used)}</li><li>see <a href=\"https://example.com/doc\">the docs</a></li></ul>"
        parts.append(f"<ol>{items}<li>{sentence(rng, 'en', used)}{nested}</li></ol>")
    if kind == "answer" or rng.random() < 0.5:
        parts.append(f"<p>{sentence(rng, 'en', used)}</p>")
    return "\n".join(parts)


def _row(attrs: dict) -> str:
    return "  <row " + " ".join(f"{k}={quoteattr(str(v), {chr(10): '&#xA;'})}" for k, v in attrs.items()) + " />\n"


def _title(rng: random.Random, used: set[str]) -> str:
    words = sentence(rng, "en", used).rstrip(".").split()
    return "Why " + " ".join([words[0].lower()] + words[1:]) + "?"


def site_posts(rng: random.Random, used: set[str], questions: int, first_id: int = 1,
               plant: bool = False) -> bytes:
    """A Posts.xml: questions with 0-4 answers each, answers partly written far after their question."""
    rows, late, next_id = [], [], first_id
    for q in range(questions):
        qid, next_id = next_id, next_id + 1
        n_answers = 0 if q == 1 else rng.randint(1, 4)
        tags = rng.sample(TAGS, 2)
        tag_text = "".join(f"<{t}>" for t in tags) if q % 2 else "|" + "|".join(tags) + "|"
        scores = [10, 9, -1] if plant and q == 0 else [rng.randint(-2, 15) for _ in range(n_answers)]
        answer_ids = list(range(next_id, next_id + len(scores)))
        accepted = {"AcceptedAnswerId": answer_ids[-1]} if answer_ids else {}
        rows.append(_row({"Id": qid, "PostTypeId": 1, **accepted,
                          "CreationDate": f"2015-0{1 + q % 9}-1{q % 10}T10:00:00.000", "Score": rng.randint(0, 30),
                          "ViewCount": rng.randint(10, 9999), "Body": _body(rng, used, "question"),
                          "Title": _title(rng, used), "Tags": tag_text, "AnswerCount": len(scores),
                          "ContentLicense": "CC BY-SA 4.0"}))
        for aid, score in zip(answer_ids, scores):
            row = _row({"Id": aid, "PostTypeId": 2, "ParentId": qid, "CreationDate": "2016-01-01T00:00:00.000",
                        "Score": score, "Body": _body(rng, used, "answer"), "ContentLicense": "CC BY-SA 4.0"})
            (late if rng.random() < 0.3 else rows).append(row)
        next_id += len(scores)
    rows += late
    if plant:
        rows.insert(3, _row({"Id": next_id, "PostTypeId": 4, "Score": 0, "Body": "<p>Tag wiki excerpt.</p>"}))
        rows.insert(5, _row({"Id": next_id + 1, "PostTypeId": 5, "Score": 0, "Body": "<p>A tag wiki.</p>"}))
        rows.append(_row({"Id": next_id + 2, "PostTypeId": 2, "ParentId": 999_999, "Score": 3,
                          "Body": "<p>An answer to a deleted question.</p>"}))
        rows.insert(7, '  <row Id="{0}" PostTypeId="1" Score="2" Body="&lt;p&gt;unclosed />\n'.format(next_id + 3))
        rows.insert(9, _row({"Id": next_id + 4, "PostTypeId": 2, "ParentId": first_id, "Score": "abc",
                             "Body": "<p>x</p>"}))
    head = '<?xml version="1.0" encoding="utf-8"?>\n<posts>\n'
    data = (head + "".join(rows) + "</posts>\n").encode("utf-8")
    if plant:  # a row with bytes that are not UTF-8
        bad = _row({"Id": next_id + 5, "PostTypeId": 1, "Score": 1, "Body": "<p>caf\u00e9</p>", "Title": "t"})
        data = data.replace(b"</posts>\n", bad.encode().replace(b"caf\xc3\xa9", b"caf\xe9") + b"</posts>\n")
    return data


def write_7z(path: str, members: dict[str, bytes]) -> None:
    import py7zr
    from py7zr.helpers import ArchiveTimestamp
    with py7zr.SevenZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(data, name)
        stamp = ArchiveTimestamp.from_datetime(FIXED_TIME)
        for info in archive.header.files_info.files:  # fixed times, so that the same seed gives the same bytes
            for field in ("creationtime", "lastwritetime", "lastaccesstime"):
                info[field] = stamp


def _users(rng: random.Random) -> bytes:
    rows = "".join(f'  <row Id="{i}" DisplayName="user{i}" Reputation="{rng.randint(1, 999)}" />\n'
                   for i in range(1, 6))
    return f'<?xml version="1.0" encoding="utf-8"?>\n<users>\n{rows}</users>\n'.encode()


def write_sample(directory: str, seed: int = 0, questions: int = 320) -> str:
    """Write the sample under `directory`; returns the --input for the stackexchange job (the directory).
    `questions` are spread over the sites, the first sites getting the most."""
    rng, used = random.Random(seed), set()
    os.makedirs(directory, exist_ok=True)
    weights = [1.0 / (i + 2) for i in range(len(SITES))]
    counts = [max(2, round(questions * w / sum(weights))) for w in weights]
    counts[-2:] = [1, 1]  # the two smallest sites fall outside the 28 largest
    for i, (site, n) in enumerate(zip(SITES, counts)):
        posts = site_posts(rng, used, n, plant=i == 0)
        if site == "stackoverflow.com":
            write_7z(os.path.join(directory, "stackoverflow.com-Posts.7z"), {"Posts.xml": posts})
            write_7z(os.path.join(directory, "stackoverflow.com-Users.7z"), {"Users.xml": _users(rng)})
        elif site == EXTRACTED:
            os.makedirs(os.path.join(directory, site), exist_ok=True)
            with open(os.path.join(directory, site, "Posts.xml"), "wb") as f:
                f.write(posts)
        else:
            comments = b'<?xml version="1.0" encoding="utf-8"?>\n<comments>\n</comments>\n'
            write_7z(os.path.join(directory, f"{site}.7z"),
                     {"Posts.xml": posts, "Users.xml": _users(rng), "Comments.xml": comments})
    write_7z(os.path.join(directory, f"{META}.7z"), {"Posts.xml": site_posts(rng, used, 40)})
    return directory

"""Questions joined with their answers, across a whole run, without holding a site in memory.

A whole-run step of the engine in one round: every post emits (hash of `<site>/<question id>`, key, post
id, score, whether it is the question); a thread is a group of one hash. The decision lists, for the
question, its answers in order (highest score first, ties by post id) and marks repeated posts and answers
whose question is missing. In the final pass the question's unit reads its answers' rows from the work
area and writes one document; the answers themselves are merged (no reject row: they are in the
question's document). Posts that Posts.xml lists years apart meet in the same group.

Counters, so that the funnel reads posts in, questions out: `join_answers.merged` counts the answers
merged into a question, `join_answers.rejected` the repeated posts (which have a reject row);
`join_answers.trimmed_bytes` is the bytes of the posts in minus the bytes of the documents out (negative:
titles and "A:" markers are added). Answers without their question and questions with too few answers are
rejected at `answered`.
"""
from __future__ import annotations

import json

import numpy as np
import xxhash

from pipeline.engine.keys import key_text
from pipeline.engine.steps import Round, WholeRunStep, group_starts
from pipeline.runtime.counters import doc_bytes, inc
from pipeline.schema import Document, Rejected

JOIN, ANSWERED = "join_answers", "answered"
POST = np.dtype([("h", "<u8"), ("key", "<u8"), ("post", "<i8"), ("score", "<i8"), ("question", "u1")])
# kind: the question's answers in order (other = answer, rank), an answer merged into its question, a
# repeated post (other = the first copy), an answer whose question is not in the dump
LINK = np.dtype([("key", "<u8"), ("kind", "u1"), ("other", "<u8"), ("rank", "<u4")])
ANSWER, MERGED, REPEATED, ORPHAN = 1, 2, 3, 4


def thread_of(meta: dict) -> str:
    question = meta["post_id"] if meta["post_type"] == "question" else meta.get("question_id")
    return f"{meta['site']}/{question}"


def question_document(question: Document, answers: list[Document]) -> Document:
    meta = question.metadata
    parts = [f"Q: {meta.get('title', '')}".rstrip(), question.text] + [f"A: {a.text}" for a in answers]
    out_meta = {k: v for k, v in meta.items() if k not in ("post_id", "post_type")}
    out_meta.update(question_id=meta["post_id"], answers=len(answers),
                    answer_ids=[a.metadata["post_id"] for a in answers],
                    answer_scores=[int(a.metadata["score"]) for a in answers])
    text = "\n\n".join(p for p in parts if p.strip())
    return Document(question.id, question.url, question.source, text, out_meta)


def _emit(view) -> np.ndarray:
    from pipeline.engine import spill
    rows = []
    for row in spill.read_rows(view.work, view.unit, ["key", "metadata", "stage"]):
        if row["stage"] or view.is_dropped(row["key"]):
            continue
        meta = json.loads(row["metadata"])
        rows.append((xxhash.xxh3_64_intdigest(thread_of(meta).encode()), row["key"], int(meta["post_id"]),
                     int(meta["score"]), meta["post_type"] == "question"))
    return np.array(rows, dtype=POST)


def _decide(entries: np.ndarray) -> np.ndarray:
    out = []
    starts = np.flatnonzero(group_starts(entries["h"]))
    for lo, hi in zip(starts.tolist(), np.append(starts[1:], len(entries)).tolist()):
        out += thread_links(entries[lo:hi])
    return np.array(out, dtype=LINK)


def thread_links(posts: np.ndarray) -> list[tuple]:
    """One thread's posts, sorted by key: the first copy of each post stays."""
    seen: dict[int, int] = {}
    questions, answers, out = [], [], []
    for post in posts.tolist():
        _, key, post_id, score, is_question = post
        if post_id in seen:
            out.append((key, REPEATED, seen[post_id], 0))
            continue
        seen[post_id] = key
        (questions if is_question else answers).append((key, post_id, score))
    if not questions:
        return out + [(key, ORPHAN, 0, 0) for key, _, _ in answers]
    question = questions[0][0]
    answers.sort(key=lambda a: (-a[2], a[1]))
    out += [(question, ANSWER, key, rank) for rank, (key, _, _) in enumerate(answers)]
    return out + [(key, MERGED, question, 0) for key, _, _ in answers]


class JoinAnswers(WholeRunStep):
    stage = JOIN

    def __init__(self, min_answers: int = 1):
        self.min_answers = min_answers

    def rounds(self) -> list[Round]:
        return [Round(JOIN, POST, LINK, _emit, _decide)]

    def wanted(self, view) -> list[int]:
        links = view.results(JOIN)
        return links["other"][links["kind"] == ANSWER].tolist()

    def apply(self, key: int, doc: Document, view) -> Document | Rejected | None:
        links = view.results_for(JOIN, key)
        kinds = set(links["kind"].tolist())
        if MERGED in kinds:
            return None
        if REPEATED in kinds:
            first = int(links["other"][links["kind"] == REPEATED][0])
            return Rejected(doc, JOIN, f"post {doc.metadata['post_id']} repeated (first read as {key_text(first)})")
        if ORPHAN in kinds or doc.metadata.get("post_type") != "question":
            return Rejected(doc, ANSWERED, f"answer to question {thread_of(doc.metadata)}, which is not in the dump")
        ordered = links[links["kind"] == ANSWER]
        ordered = ordered[np.argsort(ordered["rank"])]
        answers = [Document.from_row(view.prefetched[k]) for k in ordered["other"].tolist()]
        out = question_document(doc, answers)
        bytes_in = doc_bytes(doc.text) + sum(doc_bytes(a.text) for a in answers)
        inc(f"{JOIN}.trimmed_bytes", bytes_in - doc_bytes(out.text))
        if len(answers) < self.min_answers:
            return Rejected(out, ANSWERED, f"{len(answers)} answers, fewer than {self.min_answers}")
        return out

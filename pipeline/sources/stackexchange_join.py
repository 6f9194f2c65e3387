"""Questions joined with their answers, across a whole run, without holding a site in memory.

Every post is keyed by `<site>/<question id>` (a question by its own id, an answer by its ParentId) and
the posts are grouped in a shuffle (GroupByKey): a group is one question's thread, so a worker holds one
thread at a time, and the runner spreads the groups over workers and spills them to disk as it needs.
Posts Posts.xml lists years apart (an answer written long after its question) meet in the same group.

Counters, so that the funnel reads posts in, questions out: `join_answers.merged` counts the answers
merged into a question (they have no reject row: they are in the question's document),
`join_answers.rejected` the repeated posts (which have one); `join_answers.trimmed_bytes` is the bytes of the posts in minus the bytes of the
documents out (negative: titles and "A:" markers are added). Answers without their question and
questions with too few answers are rejected at `answered`.
"""
from __future__ import annotations

import apache_beam as beam

from pipeline.runtime.counters import doc_bytes, inc
from pipeline.schema import Document, Rejected

REJECTED = "rejected"
JOIN, ANSWERED = "join_answers", "answered"


def thread_key(kv):
    key, doc = kv
    meta = doc.metadata
    question = meta["post_id"] if meta["post_type"] == "question" else meta.get("question_id")
    return f"{meta['site']}/{question}", (key, doc)


def answer_order(kv) -> tuple:
    """Highest score first, as integers (10 before 9, 0 before -1); ties by post id."""
    return -int(kv[1].metadata["score"]), int(kv[1].metadata["post_id"])


def question_document(question: Document, answers: list[Document]) -> Document:
    meta = question.metadata
    parts = [f"Q: {meta.get('title', '')}".rstrip(), question.text] + [f"A: {a.text}" for a in answers]
    out_meta = {k: v for k, v in meta.items() if k not in ("post_id", "post_type")}
    out_meta.update(question_id=meta["post_id"], answers=len(answers),
                    answer_ids=[a.metadata["post_id"] for a in answers],
                    answer_scores=[int(a.metadata["score"]) for a in answers])
    text = "\n\n".join(p for p in parts if p.strip())
    return Document(question.id, question.url, question.source, text, out_meta)


def _reject(key: str, doc: Document, stage: str, reason: str):
    inc(f"{stage}.rejected")
    inc(f"{stage}.rejected_bytes", doc_bytes(doc.text))
    return beam.pvalue.TaggedOutput(REJECTED, (key, Rejected(doc, stage, reason)))


class AssembleThread(beam.DoFn):
    def __init__(self, min_answers: int):
        self.min_answers = min_answers

    def process(self, group):
        thread, posts = group
        seen: dict[int, str] = {}
        questions, answers = [], []
        for key, doc in sorted(posts, key=lambda kv: kv[0]):  # smallest key first: the first copy stays
            post_id = doc.metadata["post_id"]
            if post_id in seen:
                yield _reject(key, doc, JOIN, f"post {post_id} repeated (first read as {seen[post_id]})")
                continue
            seen[post_id] = key
            (questions if doc.metadata["post_type"] == "question" else answers).append((key, doc))
        if not questions:
            for key, doc in answers:
                yield _reject(key, doc, ANSWERED, f"answer to question {thread}, which is not in the dump")
            return
        qkey, question = questions[0]
        answers.sort(key=answer_order)
        doc = question_document(question, [a for _, a in answers])
        inc(f"{JOIN}.merged", len(answers))
        bytes_in = doc_bytes(question.text) + sum(doc_bytes(a.text) for _, a in answers)
        inc(f"{JOIN}.trimmed_bytes", bytes_in - doc_bytes(doc.text))
        if len(answers) < self.min_answers:
            yield _reject(qkey, doc, ANSWERED, f"{len(answers)} answers, fewer than {self.min_answers}")
            return
        yield qkey, doc


class JoinAnswers(beam.PTransform):
    """(key, post Document) -> (kept question documents, rejected) as (key, Document) / (key, Rejected)."""

    def __init__(self, min_answers: int = 1):
        super().__init__()
        self.min_answers = min_answers

    def expand(self, posts):
        out = (posts | "Key by thread" >> beam.Map(thread_key)
               | "Group threads" >> beam.GroupByKey()
               | "Assemble threads" >> beam.ParDo(AssembleThread(self.min_answers)).with_outputs(REJECTED, main="kept"))
        return out.kept, out[REJECTED]

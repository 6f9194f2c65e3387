"""Benchmark readers: each published file layout, read from local files only, into one of two example
types, with the prompts the LLaMA-1 evaluation (after GPT-3 and lm-evaluation-harness) uses.

`ChoiceExample`: one (context, continuation) pair per choice and the index of the right one; the model's
pick is the choice whose continuation is most likely under the task's normalisation. `AnswerExample`: a
prompt to continue greedily and the accepted answers (exact match). Few-shot prompts put K solved
examples before each one: for MMLU the first K of the subject's dev split, for the other tasks K other
examples of the same file, drawn with a seed per example (never the example itself).

A missing or malformed file raises `TaskDataError` (a ValueError) naming the layout expected and the path.
This module needs only the standard library: the trainer's configuration checks task names with it.
"""
from __future__ import annotations

import csv
import dataclasses
import glob
import json
import os
import random
import re
from typing import Any, Callable, Iterator

SEED = 1234
QA_HEADER = "Answer these questions:\n"
MMLU_LETTERS = ("A", "B", "C", "D")


class TaskDataError(ValueError):
    """A task's file is missing or not in the layout its reader expects."""


@dataclasses.dataclass(frozen=True)
class ChoiceExample:
    contexts: tuple[str, ...]            # one per choice (WinoGrande: the sentence up to its blank, filled)
    continuations: tuple[str, ...]       # one per choice (WinoGrande: the same text after the blank)
    label: int
    subject: str = ""                    # MMLU

    def solved(self) -> str:
        return self.contexts[self.label] + self.continuations[self.label]


@dataclasses.dataclass(frozen=True)
class AnswerExample:
    question: str
    answers: tuple[str, ...]
    prompt: str = ""


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: str                            # "choice" or "exact_match"
    normalisation: str                   # chars | unconditional | none | exact_match normalisation
    layout: str                          # the published layout, for error messages
    paths: tuple[str, ...]               # where under --data-dir, first found wins
    reader: Callable[[str], list]
    default_shots: int = 0


# -- small readers ----------------------------------------------------------------------------------------

def _jsonl(path: str, layout: str) -> Iterator[tuple[int, dict]]:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise TaskDataError(f"{path}:{n}: not JSON ({exc}); expected {layout}") from None
            if not isinstance(row, dict):
                raise TaskDataError(f"{path}:{n}: a JSON {type(row).__name__}, not an object; expected {layout}")
            yield n, row


def _field(row: dict, key: str, where: str, layout: str, kind: type | tuple = str) -> Any:
    value = row
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise TaskDataError(f"{where}: no field {key!r}; expected {layout}")
        value = value[part]
    if not isinstance(value, kind):
        raise TaskDataError(f"{where}: field {key!r} is a {type(value).__name__}; expected {layout}")
    return value


def _labels(path: str, count: int, layout: str) -> list[int]:
    if not os.path.isfile(path):
        raise TaskDataError(f"{path} not found: expected {layout}")
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip()]
    if len(lines) != count:
        raise TaskDataError(f"{path}: {len(lines)} labels for {count} examples; expected {layout}")
    try:
        return [int(x) for x in lines]
    except ValueError:
        raise TaskDataError(f"{path}: a label that is not an integer; expected {layout}") from None


def _labels_path(path: str) -> str:
    return re.sub(r"\.jsonl$", "", path) + "-labels.lst"


def _choice(context: str, options: list[str], label: int, where: str, layout: str) -> ChoiceExample:
    if not 0 <= label < len(options):
        raise TaskDataError(f"{where}: answer {label} outside the {len(options)} choices; expected {layout}")
    return ChoiceExample((context,) * len(options), tuple(" " + o.strip() for o in options), label)


# -- the tasks --------------------------------------------------------------------------------------------

BOOLQ = "BoolQ jsonl, one object a line: {question, passage, answer: true|false}"


def read_boolq(path: str) -> list[ChoiceExample]:
    out = []
    for n, row in _jsonl(path, BOOLQ):
        where = f"{path}:{n}"
        question = _field(row, "question", where, BOOLQ).strip()
        passage = _field(row, "passage", where, BOOLQ).strip()
        answer = _field(row, "answer", where, BOOLQ, bool)
        question = question[0].upper() + question[1:] if question else question
        out.append(_choice(f"{passage}\nQuestion: {question.rstrip('?')}?\nAnswer:", ["no", "yes"], int(answer),
                           where, BOOLQ))
    return out


PIQA = "PIQA: <split>.jsonl {goal, sol1, sol2} and <split>-labels.lst (0 or 1 a line)"


def read_piqa(path: str) -> list[ChoiceExample]:
    rows = list(_jsonl(path, PIQA))
    labels = _labels(_labels_path(path), len(rows), PIQA)
    out = []
    for (n, row), label in zip(rows, labels):
        where = f"{path}:{n}"
        goal = _field(row, "goal", where, PIQA).strip()
        options = [_field(row, k, where, PIQA) for k in ("sol1", "sol2")]
        out.append(_choice(f"Question: {goal}\nAnswer:", options, label, where, PIQA))
    return out


SIQA = "Social IQa: <split>.jsonl {context, question, answerA, answerB, answerC} and <split>-labels.lst (1-3)"


def read_siqa(path: str) -> list[ChoiceExample]:
    rows = list(_jsonl(path, SIQA))
    labels = _labels(_labels_path(path), len(rows), SIQA)
    out = []
    for (n, row), label in zip(rows, labels):
        where = f"{path}:{n}"
        context = _field(row, "context", where, SIQA).strip()
        question = _field(row, "question", where, SIQA).strip()
        options = [_field(row, k, where, SIQA) for k in ("answerA", "answerB", "answerC")]
        out.append(_choice(f"Question: {context} {question}\nAnswer:", options, label - 1, where, SIQA))
    return out


HELLASWAG = "HellaSwag jsonl: {ctx, endings: [4 strings], label} (activity_label optional)"


def _hellaswag_clean(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def read_hellaswag(path: str, clean: bool = True) -> list[ChoiceExample]:
    tidy = _hellaswag_clean if clean else str.strip
    out = []
    for n, row in _jsonl(path, HELLASWAG):
        where = f"{path}:{n}"
        ctx = tidy(_field(row, "ctx", where, HELLASWAG))
        endings = _field(row, "endings", where, HELLASWAG, list)
        if not endings or not all(isinstance(e, str) for e in endings):
            raise TaskDataError(f"{where}: endings must be a list of strings; expected {HELLASWAG}")
        label = row.get("label")
        if isinstance(label, str) and label.isdigit():
            label = int(label)
        if not isinstance(label, int) or isinstance(label, bool):
            raise TaskDataError(f"{where}: label {label!r} is not a choice index; expected {HELLASWAG}")
        activity = row.get("activity_label")
        context = f"{activity}: {ctx}" if clean and isinstance(activity, str) and activity else ctx
        out.append(_choice(context, [tidy(e) for e in endings], label, where, HELLASWAG))
    return out


WINOGRANDE = "WinoGrande jsonl: {sentence with one _, option1, option2, answer: \"1\"|\"2\"}"


def read_winogrande(path: str) -> list[ChoiceExample]:
    """Partial scoring: each option fills the blank, and the choice is the option under which the text
    after the blank is most likely (the continuation is the same for both)."""
    out = []
    for n, row in _jsonl(path, WINOGRANDE):
        where = f"{path}:{n}"
        sentence = _field(row, "sentence", where, WINOGRANDE)
        options = [_field(row, k, where, WINOGRANDE) for k in ("option1", "option2")]
        answer = str(_field(row, "answer", where, WINOGRANDE, (str, int)))
        if sentence.count("_") != 1 or answer not in ("1", "2"):
            raise TaskDataError(f"{where}: needs exactly one _ in the sentence and answer 1 or 2; expected "
                                f"{WINOGRANDE}")
        before, after = sentence.split("_")
        rest = " " + after.strip()
        out.append(ChoiceExample(tuple(before + o for o in options), (rest, rest), int(answer) - 1))
    return out


ARC = "ARC jsonl: {question: {stem, choices: [{label, text}]}, answerKey}"


def _arc_row(row: dict, where: str, layout: str) -> tuple[str, list[str], int]:
    stem = _field(row, "question.stem", where, layout).strip()
    choices = _field(row, "question.choices", where, layout, list)
    key = str(_field(row, "answerKey", where, layout, (str, int))).strip()
    labels = [str(_field(c, "label", where, layout, (str, int))).strip() for c in choices]
    texts = [_field(c, "text", where, layout) for c in choices]
    if key not in labels:
        raise TaskDataError(f"{where}: answerKey {key!r} is none of the labels {labels}; expected {layout}")
    return stem, texts, labels.index(key)


def read_arc(path: str) -> list[ChoiceExample]:
    out = []
    for n, row in _jsonl(path, ARC):
        stem, texts, label = _arc_row(row, f"{path}:{n}", ARC)
        out.append(_choice(f"Question: {stem}\nAnswer:", texts, label, f"{path}:{n}", ARC))
    return out


OPENBOOKQA = "OpenBookQA jsonl (as ARC): {question: {stem, choices: [{label, text}]}, answerKey}"


def read_openbookqa(path: str) -> list[ChoiceExample]:
    out = []
    for n, row in _jsonl(path, OPENBOOKQA):
        stem, texts, label = _arc_row(row, f"{path}:{n}", OPENBOOKQA)
        out.append(_choice(stem, texts, label, f"{path}:{n}", OPENBOOKQA))
    return out


RACE = ("RACE: a directory of per-article JSON files, or a jsonl, each object {article, questions, options, "
        "answers} (or one question per line: {article, question, options, answer}); answers are letters A-D")


def _race_questions(row: dict, where: str) -> Iterator[tuple[str, list[str], str]]:
    if "questions" in row:
        questions = _field(row, "questions", where, RACE, list)
        options = _field(row, "options", where, RACE, list)
        answers = _field(row, "answers", where, RACE, list)
        if not len(questions) == len(options) == len(answers):
            raise TaskDataError(f"{where}: questions, options and answers differ in length; expected {RACE}")
        yield from zip(questions, options, answers)
    else:
        yield (_field(row, "question", where, RACE), _field(row, "options", where, RACE, list),
               _field(row, "answer", where, RACE))


def _race_example(article: str, question: str, options: list[str], answer: str, where: str) -> ChoiceExample:
    letters = [chr(ord("A") + i) for i in range(len(options))]
    if answer not in letters or not all(isinstance(o, str) for o in options):
        raise TaskDataError(f"{where}: answer {answer!r} with {len(options)} options; expected {RACE}")
    label = letters.index(answer)
    if "_" in question:          # a cloze question: the option fills the blank
        before, _, after = question.partition("_")
        context = f"Article: {article}\n\n{before.rstrip()}"
        return ChoiceExample((context,) * len(options), tuple(f" {o.strip()} {after.strip()}".rstrip()
                                                              for o in options), label)
    return _choice(f"Article: {article}\n\nQuestion: {question.strip()}\nAnswer:", options, label, where, RACE)


def read_race(path: str) -> list[ChoiceExample]:
    if os.path.isdir(path):
        files = sorted(f for f in glob.glob(os.path.join(path, "*")) if os.path.isfile(f))
        if not files:
            raise TaskDataError(f"{path}: no article files; expected {RACE}")
        rows = []
        for file in files:
            with open(file, encoding="utf-8") as f:
                try:
                    row = json.load(f)
                except ValueError as exc:
                    raise TaskDataError(f"{file}: not JSON ({exc}); expected {RACE}") from None
            if not isinstance(row, dict):
                raise TaskDataError(f"{file}: not a JSON object; expected {RACE}")
            rows.append((file, row))
    else:
        rows = [(f"{path}:{n}", row) for n, row in _jsonl(path, RACE)]
    out = []
    for where, row in rows:
        article = _field(row, "article", where, RACE).strip()
        for question, options, answer in _race_questions(row, where):
            out.append(_race_example(article, question, options, answer, where))
    return out


NQ_OPEN = "NQ-open jsonl: {question, answer: [accepted answers]}"


def read_nq_open(path: str, layout: str = NQ_OPEN) -> list[AnswerExample]:
    out = []
    for n, row in _jsonl(path, layout):
        where = f"{path}:{n}"
        question = _field(row, "question", where, layout)
        answers = _field(row, "answer", where, layout, list)
        if not answers or not all(isinstance(a, str) for a in answers):
            raise TaskDataError(f"{where}: answer must be a non-empty list of strings; expected {layout}")
        out.append(AnswerExample(question.strip(), tuple(answers)))
    return out


TRIVIAQA = ("TriviaQA: the unfiltered or rc JSON {Data: [{Question, Answer: {Aliases: [...], Value}}]}, or an "
            "NQ-open-style jsonl {question, answer: [...]}")


def read_triviaqa(path: str) -> list[AnswerExample]:
    if path.endswith(".jsonl"):
        return read_nq_open(path, TRIVIAQA)
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except ValueError as exc:
            raise TaskDataError(f"{path}: not JSON ({exc}); expected {TRIVIAQA}") from None
    items = _field(data, "Data", path, TRIVIAQA, list) if isinstance(data, dict) else None
    if items is None:
        raise TaskDataError(f"{path}: not a JSON object with Data; expected {TRIVIAQA}")
    out = []
    for i, item in enumerate(items):
        where = f"{path}: Data[{i}]"
        question = _field(item, "Question", where, TRIVIAQA)
        aliases = _field(item, "Answer.Aliases", where, TRIVIAQA, list)
        value = item["Answer"].get("Value")
        answers = tuple(dict.fromkeys([*(a for a in aliases if isinstance(a, str)),
                                       *([value] if isinstance(value, str) else [])]))
        if not answers:
            raise TaskDataError(f"{where}: no answer aliases; expected {TRIVIAQA}")
        out.append(AnswerExample(question.strip(), answers))
    return out


MMLU = ("MMLU: <dir>/dev/<subject>_dev.csv and <dir>/test/<subject>_test.csv, no header, rows "
        "question,A,B,C,D,answer (answer a letter A-D)")


def _mmlu_rows(path: str) -> list[tuple[str, list[str], int]]:
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.reader(f), 1):
            if not row:
                continue
            if len(row) != 6 or row[5].strip() not in MMLU_LETTERS:
                raise TaskDataError(f"{path}:{n}: {len(row)} columns, answer {row[-1]!r}; expected {MMLU}")
            rows.append((row[0], row[1:5], MMLU_LETTERS.index(row[5].strip())))
    return rows


def _mmlu_question(question: str, options: list[str]) -> str:
    lines = [question.strip()] + [f"{letter}. {o}" for letter, o in zip(MMLU_LETTERS, options)]
    return "\n".join(lines) + "\nAnswer:"


def mmlu_prompt(subject: str, demos: list[tuple[str, list[str], int]], question: str, options: list[str]) -> str:
    """Hendrycks et al.'s prompt: a header naming the subject, the solved dev questions, the question."""
    head = f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
    solved = "".join(f"{_mmlu_question(q, o)} {MMLU_LETTERS[a]}\n\n" for q, o, a in demos)
    return head + solved + _mmlu_question(question, options)


def read_mmlu(path: str, shots: int = 5) -> list[ChoiceExample]:
    tests = sorted(glob.glob(os.path.join(path, "test", "*_test.csv")))
    if not tests:
        raise TaskDataError(f"{path}/test holds no <subject>_test.csv; expected {MMLU}")
    out = []
    for test in tests:
        subject = os.path.basename(test)[:-len("_test.csv")]
        dev = os.path.join(path, "dev", f"{subject}_dev.csv")
        if shots and not os.path.isfile(dev):
            raise TaskDataError(f"{dev} not found (the {shots}-shot prompts come from it); expected {MMLU}")
        demos = _mmlu_rows(dev)[:shots] if shots else []
        if len(demos) < shots:
            raise TaskDataError(f"{dev}: {len(demos)} questions for {shots}-shot prompts; expected {MMLU}")
        for question, options, answer in _mmlu_rows(test):
            context = mmlu_prompt(subject, demos, question, options)
            out.append(ChoiceExample((context,) * 4, tuple(f" {x}" for x in MMLU_LETTERS), answer, subject))
    return out


CONTINUATION = ("continuation jsonl (the demo's task, HellaSwag's fields): {ctx, endings: [strings], label}")


def read_continuation(path: str) -> list[ChoiceExample]:
    return read_hellaswag(path, clean=False)


TASKS: dict[str, TaskSpec] = {t.name: t for t in (
    TaskSpec("boolq", "choice", "unconditional", BOOLQ, ("boolq/dev.jsonl", "boolq/val.jsonl"), read_boolq),
    TaskSpec("piqa", "choice", "chars", PIQA, ("piqa/valid.jsonl", "piqa/dev.jsonl"), read_piqa),
    TaskSpec("siqa", "choice", "chars", SIQA, ("siqa/dev.jsonl", "socialiqa-train-dev/dev.jsonl"), read_siqa),
    TaskSpec("hellaswag", "choice", "chars", HELLASWAG, ("hellaswag/hellaswag_val.jsonl",), read_hellaswag),
    TaskSpec("winogrande", "choice", "none", WINOGRANDE, ("winogrande/dev.jsonl", "winogrande_1.1/dev.jsonl"),
             read_winogrande),
    TaskSpec("arc_easy", "choice", "chars", ARC, ("ARC-V1-Feb2018-2/ARC-Easy/ARC-Easy-Test.jsonl",
                                                  "arc/ARC-Easy/ARC-Easy-Test.jsonl"), read_arc),
    TaskSpec("arc_challenge", "choice", "chars", ARC, ("ARC-V1-Feb2018-2/ARC-Challenge/ARC-Challenge-Test.jsonl",
                                                       "arc/ARC-Challenge/ARC-Challenge-Test.jsonl"), read_arc),
    TaskSpec("openbookqa", "choice", "unconditional", OPENBOOKQA,
             ("OpenBookQA-V1-Sep2018/Data/Main/test.jsonl", "openbookqa/Main/test.jsonl", "openbookqa/test.jsonl"),
             read_openbookqa),
    TaskSpec("race_middle", "choice", "chars", RACE, ("RACE/test/middle", "race/test/middle",
                                                      "race/middle/test.jsonl"), read_race),
    TaskSpec("race_high", "choice", "chars", RACE, ("RACE/test/high", "race/test/high", "race/high/test.jsonl"),
             read_race),
    TaskSpec("naturalquestions", "exact_match", "squad", NQ_OPEN,
             ("naturalquestions/NQ-open.dev.jsonl", "nq_open/NQ-open.dev.jsonl"), read_nq_open),
    TaskSpec("triviaqa", "exact_match", "squad", TRIVIAQA,
             ("triviaqa/unfiltered-web-dev.json", "triviaqa/qa/wikipedia-dev.json", "triviaqa/dev.jsonl"),
             read_triviaqa),
    TaskSpec("mmlu", "choice", "none", MMLU, ("mmlu/data", "mmlu"), read_mmlu, default_shots=5),
    TaskSpec("continuation", "choice", "chars", CONTINUATION, ("continuation/continuation.jsonl",),
             read_continuation),
)}


def parse_task_list(text: str) -> list[str]:
    """`boolq,piqa` -> the names, checked; ValueError naming an unknown one and the known ones."""
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    unknown = [t for t in names if t not in TASKS]
    if unknown or not names:
        what = f"unknown task {unknown[0]!r}" if unknown else "no task named"
        raise ValueError(f"{what}; known: {', '.join(TASKS)}")
    return list(dict.fromkeys(names))


def task_file(spec: TaskSpec, data_dir: str) -> str:
    """The first of the task's published locations that exists under `data_dir`."""
    for rel in spec.paths:
        path = os.path.join(data_dir, rel)
        if os.path.exists(path):
            return path
    where = " or ".join(os.path.join(data_dir, rel) for rel in spec.paths)
    raise TaskDataError(f"{spec.name}: no data at {where}; expected {spec.layout}")


def with_demos(examples: list, shots: int, limit: int | None = None, seed: int = SEED) -> list:
    """The first `limit` examples (all by default), each with `shots` other examples of the list, solved,
    before it (the same demos for every choice of an example); exact-match examples get the QA prompt."""
    if shots >= len(examples) and shots:
        raise TaskDataError(f"{shots}-shot prompts need more than {shots} examples; the file has {len(examples)}")
    out = []
    for i, ex in enumerate(examples[:limit] if limit else examples):
        picks = random.Random(seed + i).sample(range(len(examples) - 1), shots) if shots else []
        demos = [examples[j + (j >= i)] for j in picks]
        if isinstance(ex, AnswerExample):
            solved = "".join(f"Q: {d.question}\nA: {d.answers[0]}\n" for d in demos)
            out.append(dataclasses.replace(ex, prompt=f"{QA_HEADER}{solved}Q: {ex.question}\nA:"))
        else:
            prefix = "".join(d.solved() + "\n\n" for d in demos)
            out.append(dataclasses.replace(ex, contexts=tuple(prefix + c for c in ex.contexts)))
    return out


def load_task(name: str, data_dir: str, shots: int | None = None, limit: int | None = None) -> list:
    """The task's examples with their prompts: `shots` solved examples before each (default: the task's,
    0 except MMLU's 5), the first `limit` examples only when given."""
    spec = TASKS[name]
    shots = spec.default_shots if shots is None else shots
    path = task_file(spec, data_dir)
    try:
        examples = spec.reader(path, shots) if name == "mmlu" else spec.reader(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskDataError(f"{name}: cannot read {path} ({exc}); expected {spec.layout}") from None
    if not examples:
        raise TaskDataError(f"{name}: {path} holds no examples; expected {spec.layout}")
    if name == "mmlu" or not (shots or spec.kind == "exact_match"):
        return examples[:limit] if limit else examples
    return with_demos(examples, shots, limit)

"""The benchmark readers: files written here in each published layout read into the examples and prompts
the LLaMA-1 evaluation uses; a missing or malformed file is an error naming the layout and the path; the
MMLU k-shot prompt; few-shot demos; exact-match answer normalisation."""
from __future__ import annotations

import json
import os

import pytest

from train.evaluation.generation import exact_match, normalize_answer
from train.evaluation.tasks import TASKS, AnswerExample, TaskDataError, load_task, parse_task_list


def write_jsonl(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def arc_row(stem, texts, key, labels="ABCD"):
    return {"question": {"stem": stem, "choices": [{"label": lab, "text": t} for lab, t in zip(labels, texts)]},
            "answerKey": key}


def test_boolq_piqa_siqa_hellaswag_winogrande(tmp_path):
    d = str(tmp_path)
    write_jsonl(f"{d}/boolq/dev.jsonl",
                [{"question": "is the sky blue", "passage": "The sky is blue.", "answer": True}])
    write_jsonl(f"{d}/piqa/valid.jsonl", [{"goal": "Open a jar", "sol1": "twist the lid", "sol2": "eat the lid"}])
    write_lines(f"{d}/piqa/valid-labels.lst", ["0"])
    write_jsonl(f"{d}/siqa/dev.jsonl", [{"context": "Ann slept.", "question": "Why?", "answerA": "tired",
                                         "answerB": "hungry", "answerC": "bored"}])
    write_lines(f"{d}/siqa/dev-labels.lst", ["3"])
    write_jsonl(f"{d}/hellaswag/hellaswag_val.jsonl", [{"ctx": "A man [header] lifts", "activity_label": "Gym",
                                                        "endings": ["a bar.", "a cat.", "b", "c"], "label": 1}])
    write_jsonl(f"{d}/winogrande/dev.jsonl", [{"sentence": "The cup fell off the table because _ was tilted.",
                                               "option1": "the cup", "option2": "the table", "answer": "2"}])
    [b] = load_task("boolq", d)
    assert b.contexts[0] == "The sky is blue.\nQuestion: Is the sky blue?\nAnswer:"
    assert b.continuations == (" no", " yes") and b.label == 1
    [p] = load_task("piqa", d)
    assert p.contexts[0] == "Question: Open a jar\nAnswer:" and p.continuations == (" twist the lid", " eat the lid")
    assert p.label == 0
    [s] = load_task("siqa", d)
    assert s.contexts[0] == "Question: Ann slept. Why?\nAnswer:" and s.label == 2 and len(s.continuations) == 3
    [h] = load_task("hellaswag", d)
    assert h.contexts[0] == "Gym: A man lifts" and h.continuations[1] == " a cat." and h.label == 1
    [w] = load_task("winogrande", d)
    assert w.contexts == ("The cup fell off the table because the cup", "The cup fell off the table because the table")
    assert w.continuations == (" was tilted.", " was tilted.") and w.label == 1


def test_arc_openbookqa_race(tmp_path):
    d = str(tmp_path)
    write_jsonl(f"{d}/ARC-V1-Feb2018-2/ARC-Easy/ARC-Easy-Test.jsonl",
                [arc_row("Which is a gas?", ["iron", "steam", "wood"], "2", labels="123")])
    write_jsonl(f"{d}/arc/ARC-Challenge/ARC-Challenge-Test.jsonl", [arc_row("Why?", ["a", "b", "c", "d"], "D")])
    write_jsonl(f"{d}/openbookqa/Main/test.jsonl", [arc_row("The sun is", ["a star", "a moon", "cold", "wet"], "A")])
    os.makedirs(f"{d}/RACE/test/middle")
    with open(f"{d}/RACE/test/middle/1.txt", "w") as f:
        json.dump({"article": "Tom has a dog.", "questions": ["What does Tom have?", "Tom has a _ ."],
                   "options": [["a cat", "a dog"], ["dog", "cat"]], "answers": ["B", "A"]}, f)
    write_jsonl(f"{d}/race/high/test.jsonl", [{"article": "Sea.", "question": "Where?", "options": ["sea", "land"],
                                               "answer": "A"}])
    [e] = load_task("arc_easy", d)
    assert e.contexts[0] == "Question: Which is a gas?\nAnswer:" and e.label == 1 and e.continuations[1] == " steam"
    assert load_task("arc_challenge", d)[0].label == 3
    [o] = load_task("openbookqa", d)
    assert o.contexts[0] == "The sun is" and o.label == 0 and TASKS["openbookqa"].normalisation == "unconditional"
    q1, q2 = load_task("race_middle", d)
    assert q1.contexts[0] == "Article: Tom has a dog.\n\nQuestion: What does Tom have?\nAnswer:" and q1.label == 1
    assert q2.contexts[0] == "Article: Tom has a dog.\n\nTom has a" and q2.continuations == (" dog .", " cat .")
    assert load_task("race_high", d)[0].label == 0


def test_closed_book_qa_layouts_and_prompts(tmp_path):
    d = str(tmp_path)
    write_jsonl(f"{d}/naturalquestions/NQ-open.dev.jsonl",
                [{"question": "who wrote hamlet", "answer": ["Shakespeare", "William Shakespeare"]},
                 {"question": "capital of france", "answer": ["Paris"]}])
    os.makedirs(f"{d}/triviaqa")
    with open(f"{d}/triviaqa/unfiltered-web-dev.json", "w") as f:
        json.dump({"Data": [{"Question": "Largest planet?", "Answer": {"Aliases": ["jupiter"], "Value": "Jupiter"}}]},
                  f)
    nq = load_task("naturalquestions", d)
    assert nq[0] == AnswerExample("who wrote hamlet", ("Shakespeare", "William Shakespeare"),
                                  "Answer these questions:\nQ: who wrote hamlet\nA:")
    one_shot = load_task("naturalquestions", d, shots=1)
    assert one_shot[0].prompt == "Answer these questions:\nQ: capital of france\nA: Paris\nQ: who wrote hamlet\nA:"
    [t] = load_task("triviaqa", d)
    assert t.answers == ("jupiter", "Jupiter") and t.prompt.endswith("Q: Largest planet?\nA:")


def test_mmlu_five_shot_prompt_from_the_subjects_dev_split(tmp_path):
    d = tmp_path / "mmlu" / "data"
    (d / "dev").mkdir(parents=True)
    (d / "test").mkdir()
    dev = "".join(f"q{i},a{i},b{i},c{i},d{i},{'ABCD'[i % 4]}\n" for i in range(5))
    (d / "dev" / "high_school_physics_dev.csv").write_text(dev + "q5,a,b,c,d,A\n")
    (d / "test" / "high_school_physics_test.csv").write_text('"What, exactly, is mass?",kg,m,s,"A, B",D\n')
    [ex] = load_task("mmlu", str(tmp_path))
    solved = "".join(f"q{i}\nA. a{i}\nB. b{i}\nC. c{i}\nD. d{i}\nAnswer: {'ABCD'[i % 4]}\n\n" for i in range(5))
    assert ex.contexts[0] == ("The following are multiple choice questions (with answers) about high school "
                              f"physics.\n\n{solved}What, exactly, is mass?\nA. kg\nB. m\nC. s\nD. A, B\nAnswer:")
    assert ex.continuations == (" A", " B", " C", " D") and ex.label == 3 and ex.subject == "high_school_physics"
    [zero] = load_task("mmlu", str(tmp_path), shots=0)
    assert zero.contexts[0].endswith("physics.\n\nWhat, exactly, is mass?\nA. kg\nB. m\nC. s\nD. A, B\nAnswer:")


def test_few_shot_demos_are_other_solved_examples(tmp_path):
    rows = [{"goal": f"goal {i}", "sol1": f"right {i}", "sol2": f"wrong {i}"} for i in range(6)]
    write_jsonl(f"{tmp_path}/piqa/valid.jsonl", rows)
    write_lines(f"{tmp_path}/piqa/valid-labels.lst", ["0"] * 6)
    examples = load_task("piqa", str(tmp_path), shots=2, limit=4)
    assert len(examples) == 4
    for i, ex in enumerate(examples):
        demos, own = ex.contexts[0].rsplit("\n\n", 1)
        assert own == f"Question: goal {i}\nAnswer:" and ex.contexts[0] == ex.contexts[1]
        parts = demos.split("\n\n")
        assert len(parts) == 2 and f"goal {i}\n" not in demos
        assert all(p.startswith("Question: goal ") and " right " in p for p in parts)


@pytest.mark.parametrize("task,path,content,message", [
    ("boolq", "boolq/dev.jsonl", '{"question": "q", "passage": "p"}\n', "no field 'answer'"),
    ("boolq", "boolq/dev.jsonl", '{"question": "q", "passage": "p", "answer": "yes"}\n', "field 'answer' is a str"),
    ("hellaswag", "hellaswag/hellaswag_val.jsonl", "not json\n", "not JSON"),
    ("arc_easy", "arc/ARC-Easy/ARC-Easy-Test.jsonl", json.dumps(arc_row("s", ["a", "b"], "C")) + "\n", "answerKey"),
    ("mmlu", "mmlu/data/test/x_test.csv", "q,a,b,c,d\n", "columns"),
])
def test_a_malformed_file_names_its_path_and_layout(tmp_path, task, path, content, message):
    full = tmp_path / path
    full.parent.mkdir(parents=True)
    full.write_text(content)
    if task == "mmlu":
        (tmp_path / "mmlu/data/dev").mkdir()
        (tmp_path / "mmlu/data/dev/x_dev.csv").write_text("q,a,b,c,d,A\n" * 5)
    with pytest.raises(TaskDataError, match=message) as err:
        load_task(task, str(tmp_path))
    assert str(full) in str(err.value) and TASKS[task].layout in str(err.value)


def test_missing_files_name_every_expected_place(tmp_path):
    with pytest.raises(TaskDataError, match="piqa/valid.jsonl") as err:
        load_task("piqa", str(tmp_path))
    assert TASKS["piqa"].layout in str(err.value)
    write_jsonl(f"{tmp_path}/piqa/valid.jsonl", [{"goal": "g", "sol1": "a", "sol2": "b"}])
    with pytest.raises(TaskDataError, match="valid-labels.lst not found"):
        load_task("piqa", str(tmp_path))
    write_lines(f"{tmp_path}/piqa/valid-labels.lst", ["0", "1"])
    with pytest.raises(TaskDataError, match="2 labels for 1 examples"):
        load_task("piqa", str(tmp_path))


def test_task_names():
    assert parse_task_list("BoolQ, piqa,boolq") == ["boolq", "piqa"]
    with pytest.raises(ValueError, match="unknown task 'hellaswa'.*hellaswag"):
        parse_task_list("hellaswa")


def test_exact_match_normalisation():
    assert normalize_answer("  The  Beatles!  ") == "beatles"
    assert normalize_answer("An apple, a pear & the fig.") == "apple pear fig"
    assert exact_match("the Eiffel tower.", ["Eiffel Tower", "Tour Eiffel"])
    assert exact_match("Tour  Eiffel", ("Eiffel Tower", "Tour Eiffel"))
    assert not exact_match("Eiffel", ["Eiffel Tower"])
    assert not exact_match("theatre", ["atre"])          # "the" is removed as a word, not as letters

"""The LLaMA-1 paper's published evaluation figures (Touvron et al. 2023, arXiv:2302.13971), as data, each
with its table: the numbers `smallgiant eval` prints beside its own. Percentages, per model size.

Only the tasks this harness scores are here: Tables 3 (zero-shot common sense reasoning), 4
(NaturalQuestions, exact match), 5 (TriviaQA, exact match on the filtered dev set), 6 (RACE, zero-shot)
and 9 (MMLU, 5-shot; the harness reports the average, not the four category columns). Tables 7 and 8
(mathematical reasoning, code generation) are tasks it does not run. docs/recipe.md carries no evaluation
figures to check these against.
"""
from __future__ import annotations

SIZES = ("7B", "13B", "33B", "65B")

# task -> (table, shots -> {size: accuracy or exact match, %})
PAPER: dict[str, tuple[int, dict[int, dict[str, float]]]] = {
    "boolq": (3, {0: dict(zip(SIZES, (76.5, 78.1, 83.1, 85.3)))}),
    "piqa": (3, {0: dict(zip(SIZES, (79.8, 80.1, 82.3, 82.8)))}),
    "siqa": (3, {0: dict(zip(SIZES, (48.9, 50.4, 50.4, 52.3)))}),
    "hellaswag": (3, {0: dict(zip(SIZES, (76.1, 79.2, 82.8, 84.2)))}),
    "winogrande": (3, {0: dict(zip(SIZES, (70.1, 73.0, 76.0, 77.0)))}),
    "arc_easy": (3, {0: dict(zip(SIZES, (72.8, 74.8, 80.0, 78.9)))}),
    "arc_challenge": (3, {0: dict(zip(SIZES, (47.6, 52.7, 57.8, 56.0)))}),
    "openbookqa": (3, {0: dict(zip(SIZES, (57.2, 56.4, 58.6, 60.2)))}),
    "naturalquestions": (4, {0: dict(zip(SIZES, (16.8, 20.1, 24.9, 23.8))),
                             1: dict(zip(SIZES, (18.7, 23.4, 28.3, 31.0))),
                             5: dict(zip(SIZES, (22.0, 28.1, 32.9, 35.0))),
                             64: dict(zip(SIZES, (26.1, 31.9, 36.0, 39.9)))}),
    "triviaqa": (5, {0: dict(zip(SIZES, (50.0, 56.6, 65.1, 68.2))),
                     1: dict(zip(SIZES, (53.4, 60.5, 67.9, 71.6))),
                     5: dict(zip(SIZES, (56.3, 63.1, 69.9, 72.6))),
                     64: dict(zip(SIZES, (57.6, 64.0, 70.4, 73.0)))}),
    "race_middle": (6, {0: dict(zip(SIZES, (61.1, 61.6, 64.1, 67.9)))}),
    "race_high": (6, {0: dict(zip(SIZES, (46.9, 47.2, 48.3, 51.6)))}),
    "mmlu": (9, {5: dict(zip(SIZES, (35.1, 46.9, 57.8, 63.4)))}),
}


def paper_figures(task: str, shots: int) -> tuple[int, dict[str, float]] | None:
    """(table, {size: %}) for the task at this many shots, or None when the paper has no such figure."""
    entry = PAPER.get(task)
    if entry is None or shots not in entry[1]:
        return None
    return entry[0], entry[1][shots]

"""Precision, recall and F1 across thresholds against ground truth, as a table and a chart.

Links are judged one per query record (its best candidate), as the registry uses them: a query
resolves to at most one person.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99, 0.999)


@dataclass(frozen=True, slots=True)
class Score:
    threshold: float
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        wanted = self.true_positives + self.false_negatives
        return self.true_positives / wanted if wanted else 1.0

    @property
    def f1(self) -> float:
        denominator = 2 * self.true_positives + self.false_positives + self.false_negatives
        return 2 * self.true_positives / denominator if denominator else 1.0


def best_links(pairs: pd.DataFrame) -> pd.DataFrame:
    """The best-scoring pair per left record (columns `left_id`, `right_id`, `match_probability`)."""
    ordered = pairs.sort_values(["match_probability", "right_id"], ascending=[False, True], kind="stable")
    return ordered.drop_duplicates("left_id").reset_index(drop=True)


def score_at(links: pd.DataFrame, truth: set[tuple[str, str]], threshold: float) -> Score:
    """Score one-per-left links at a probability threshold against the true (left, right) pairs."""
    kept = links[links["match_probability"] >= threshold]
    found = set(zip(kept["left_id"].astype(str), kept["right_id"].astype(str), strict=True))
    tp = len(found & truth)
    return Score(threshold, tp, len(found) - tp, len(truth) - tp)


def sweep(
    pairs: pd.DataFrame, truth: Iterable[tuple[str, str]], thresholds: Sequence[float] = DEFAULT_THRESHOLDS
) -> list[Score]:
    """Scores at each threshold, from scored candidate pairs (several per left record allowed)."""
    links = best_links(pairs)
    wanted = {(str(a), str(b)) for a, b in truth}
    return [score_at(links, wanted, t) for t in thresholds]


def markdown_table(scores: Sequence[Score]) -> str:
    lines = [
        "| threshold | TP | FP | FN | precision | recall | F1 |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in scores:
        lines.append(
            f"| {s.threshold:g} | {s.true_positives:,} | {s.false_positives:,} | {s.false_negatives:,} "
            f"| {s.precision:.4f} | {s.recall:.4f} | {s.f1:.4f} |"
        )
    return "\n".join(lines)


def plot(scores: Sequence[Score], path: Path, title: str = "record linkage") -> None:
    """Precision, recall and F1 against the threshold, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    thresholds = [s.threshold for s in scores]
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in ("precision", "recall", "f1"):
        ax.plot(thresholds, [getattr(s, name) for s in scores], marker="o", label=name)
    ax.set_xscale("logit")
    ax.set_xlabel("match probability threshold")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

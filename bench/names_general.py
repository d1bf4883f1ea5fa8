"""PERSON precision on general text: what the detector calls a name in Self-Instruct, T0 and
MMLU, checked against findings labelled by hand.

For each set, records are drawn at random (seeded by the set's name: all 427 Self-Instruct
records, 2,000 of T0's and of MMLU's). The detector as it was before its rules for lines of
titles (2026-12-05) found PERSON spans in them, and spans were drawn from those at random and
read by a person (``bench/labels/names_general.jsonl``: split, set, record, offsets, the span,
person or not, a note): 100 per set to build the rules on ("build"), then another 100 per set
with another seed, less those already labelled ("measure"), read only after the rules were
written. Here the detector runs again on the same records: precision is the share of the
labelled spans it still finds that are people, "names kept" the share of the labelled people it
still finds (the rules only take findings away, so both can be scored on the old findings'
labels), records changed the share of records with any PERSON finding.

    .venv/bin/python -m bench.names_general [--data ../shared/data]
    .venv/bin/python -m bench.names_general --draw spans.jsonl --split NAME  # spans to label
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneloop.curate.persons import PersonDetector

from bench import data
from bench.real_sets import records

LABELS = Path(__file__).parent / "labels" / "names_general.jsonl"
SETS = {"self_instruct": "self_instruct", "t0": "T0/P3 (self_instruct)", "mmlu": "mmlu"}
RECORDS_PER_SET = 2000


@dataclass
class SetResult:
    name: str
    records: int
    changed: int  # records with a PERSON finding
    spans: int  # PERSON findings in all
    build: tuple[int, int, int, int]  # labelled, people among them, still found, people found
    measure: tuple[int, int, int, int]

    @staticmethod
    def precision(split: tuple[int, int, int, int]) -> float:
        return split[3] / split[2] if split[2] else 1.0

    @staticmethod
    def names_kept(split: tuple[int, int, int, int]) -> float:
        return split[3] / split[1] if split[1] else 1.0


def sample(key: str, root: Path) -> tuple[list[int], list[str]]:
    """The records of a set the labels refer to (by index) and their texts."""
    found = list(records(SETS[key], root))
    pick = sorted(random.Random(key).sample(range(len(found)), min(RECORDS_PER_SET, len(found))))
    return pick, ["\n".join(m.content for m in found[i].messages) for i in pick]


def totals(results: list[SetResult], split: str = "measure") -> tuple[int, int, int, int]:
    """The sets' counts for one split added up."""
    rows = [r.measure if split == "measure" else r.build for r in results]
    a, b, c, d = (sum(row[i] for row in rows) for i in range(4))
    return a, b, c, d


def _labels() -> list[dict[str, Any]]:
    if not LABELS.exists():
        return []
    return [json.loads(line) for line in LABELS.read_text().splitlines() if line.strip()]


def measure(root: Path, detector: PersonDetector | None = None) -> list[SetResult]:
    detector = detector or PersonDetector()
    labels = _labels()
    out = []
    for key in SETS:
        pick, texts = sample(key, root)
        found = detector.find_many(texts)
        spans = {(i, f.start, f.end) for i, fs in zip(pick, found, strict=True)
                 for f in fs if f.kind == "PERSON"}  # fmt: skip
        counts = {}
        for split in ("build", "measure"):
            mine = [(r["record"], r["start"], r["end"], r["label"] == "person")
                    for r in labels if r["set"] == key and r["split"] == split]  # fmt: skip
            kept = [person for i, a, b, person in mine if (i, a, b) in spans]
            counts[split] = (len(mine), sum(m[3] for m in mine), len(kept), sum(kept))
        changed = sum(1 for fs in found if any(f.kind == "PERSON" for f in fs))
        out.append(SetResult(key, len(texts), changed, len(spans), counts["build"],
                             counts["measure"]))  # fmt: skip
    return out


def draw(root: Path, out: Path, split: str, per_set: int = 100, context: int = 160) -> None:
    """Write the spans to label: ``per_set`` PERSON findings per set drawn at random (seeded by
    the set's name), each with the text around it; a person adds ``label``: person or not."""
    detector = PersonDetector()
    labelled = {(r["set"], r["record"], r["start"], r["end"]) for r in _labels()}
    with out.open("w", encoding="utf-8") as fh:
        for key in SETS:
            pick, texts = sample(key, root)
            found = detector.find_many(texts)
            spans = [(i, t, f.start, f.end) for i, t, fs in zip(pick, texts, found, strict=True)
                     for f in fs if f.kind == "PERSON"]  # fmt: skip
            salt = "findings" if split == "build" else split  # the first draw's seed
            drawn = random.Random(f"{key}-{salt}").sample(spans, min(per_set, len(spans)))
            drawn = [d for d in drawn if (key, d[0], d[2], d[3]) not in labelled]
            for i, text, start, end in drawn:
                row = {"split": split, "set": key, "record": i, "start": start, "end": end,
                       "text": text[start:end],
                       "context": text[max(0, start - context) : end + context]}  # fmt: skip
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def table(results: list[SetResult]) -> list[str]:
    lines = [
        "| set | records | records changed | PERSON spans | precision, measure (n) "
        "| names kept, measure | precision, build (n) | names kept, build |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        cells = [
            f"{r.precision(s):.2f} ({s[2]}) | {r.names_kept(s):.2f}" for s in (r.measure, r.build)
        ]
        lines.append(
            f"| {r.name} | {r.records:,} | {r.changed / r.records:.1%} | {r.spans:,} | "
            + " | ".join(cells)
            + " |"
        )
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="the data folder (default ../shared/data)")
    parser.add_argument("--draw", type=Path, help="write spans to label to this file instead")
    parser.add_argument("--split", default="measure", help="the drawn spans' split (--draw)")
    args = parser.parse_args()
    if args.data:
        data.use(args.data)
    if args.draw:
        draw(data.root(), args.draw, args.split)
        raise SystemExit(0)
    print("\n".join(table(measure(data.root()))))

"""Quality filters on clean public sets: how many real records the curation blocks would drop.

Every set here was written and checked by people, so each drop is a false positive. The blocks
are the ones ``tuneloop curate`` builds from the default configuration (clean → quality).
Usage: python -m bench.quality_bench [--data DIR]
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tuneloop.config import CurateConfig
from tuneloop.curate.base import Drop, MapBlock
from tuneloop.curate.pipeline import record_blocks

from bench import data
from bench.real_sets import SETS, records


@dataclass
class SetResult:
    name: str
    records_in: int = 0
    dropped: Counter[str] = field(default_factory=Counter)

    @property
    def kept(self) -> int:
        return self.records_in - sum(self.dropped.values())

    @property
    def drop_rate(self) -> float:
        return sum(self.dropped.values()) / self.records_in if self.records_in else 0.0


def _blocks() -> list[MapBlock]:
    """The clean and quality blocks exactly as the default curation pipeline builds them."""
    blocks = [b for b in record_blocks(CurateConfig()) if b.name in ("clean", "quality")]
    return [b for b in blocks if isinstance(b, MapBlock)]


def measure_set(name: str, root: Path, blocks: list[MapBlock]) -> SetResult:
    result = SetResult(name)
    for record in records(name, root):
        result.records_in += 1
        for block in blocks:
            out = block.process(record)
            if isinstance(out, Drop):
                result.dropped[f"{block.name}:{out.reason}"] += 1
                break
            record = out
    return result


def run(root: Path | None = None) -> list[SetResult]:
    """One result per set present under the data folder (a missing set is left out)."""
    folder, blocks = root or data.root(), _blocks()
    return [
        measure_set(n, folder, blocks) for n, (_, need) in SETS.items() if (folder / need).exists()
    ]


def table(results: list[SetResult]) -> list[str]:
    lines = ["| data set | in | kept | dropped | dropped by reason |", "|---|---:|---:|---:|---|"]
    for r in results:
        reasons = ", ".join(f"{k} {v}" for k, v in r.dropped.most_common()) or "–"
        lines.append(
            f"| {r.name} | {r.records_in:,} | {r.kept:,} | {r.drop_rate:.2%} | {reasons} |"
        )
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="the data folder (default ../shared/data)")
    args = parser.parse_args()
    if args.data:
        data.use(args.data)
    if problem := data.missing_message(["quality"]):
        raise SystemExit(problem)
    print("\n".join(table(run())))

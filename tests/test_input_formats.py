"""Input beyond JSONL chats: ShareGPT records, CSV/TSV tables with a column mapping, bad lines
skipped into the rejects file with their line numbers, and a CSV passed as JSONL said so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneloop.errors import InputError
from tuneloop.records import read_records

from support.clirun import run

SHAREGPT = {
    "id": "s1", "system": "Be brief.",
    "conversations": [{"from": "human", "value": "How do I reset my card PIN?"},
                      {"from": "gpt", "value": "Open Settings, then Card, then Reset PIN."}],
}  # fmt: skip


def test_sharegpt_records_become_chats(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps(SHAREGPT) + "\n")
    ((line, rec),) = list(read_records(path))
    assert line == 1 and rec.shape == "chat"
    assert [(m.role, m.content) for m in rec.messages] == [
        ("system", "Be brief."), ("user", "How do I reset my card PIN?"),
        ("assistant", "Open Settings, then Card, then Reset PIN."),
    ]  # fmt: skip
    bad = {"conversations": [{"from": "narrator", "value": "x"}]}
    path.write_text(json.dumps(bad) + "\n")
    with pytest.raises(InputError, match=r"s.jsonl:1: conversations turn 0 is from 'narrator'"):
        list(read_records(path))


@pytest.mark.parametrize("sep", [",", "\t"])
def test_tables_with_a_column_mapping(tmp_path: Path, sep: str) -> None:
    path = tmp_path / ("q.csv" if sep == "," else "q.tsv")
    rows = [
        ["question", "answer", "customer", "stars"],
        ["What is 2+2?", "4", "u1", "5"],
        ["Capital of France?", "Paris", "", "4.5"],
    ]
    path.write_text("\n".join(sep.join(r) for r in rows) + "\n")
    got = list(read_records(path, columns={"prompt": "question", "completion": "answer",
                                           "user_id": "customer", "rating": "stars"}))  # fmt: skip
    assert [(n, r.prompt, r.completion, r.user_id, r.rating) for n, r in got] == [
        (2, "What is 2+2?", "4", "u1", 5.0),
        (3, "Capital of France?", "Paris", None, 4.5),
    ]
    with pytest.raises(InputError, match=r"q\.[ct]sv:1: no column 'query' in the header"):
        list(read_records(path, columns={"prompt": "query"}))


def test_ingest_skips_bad_lines_into_the_rejects(tmp_path: Path) -> None:
    assert run("init", "ws", "--no-encryption", cwd=tmp_path).returncode == 0
    turns = [{"role": "user", "content": "Where is my parcel?"},
             {"role": "assistant", "content": "On its way."}]  # fmt: skip
    good = {"user_id": "u1", "messages": turns}
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join([json.dumps(good), "{not json", json.dumps({"prompt": 3}),
                               json.dumps(SHAREGPT)]) + "\n")  # fmt: skip
    refused = run("ingest", path, "-w", "ws", cwd=tmp_path)
    assert refused.returncode == 2 and "in.jsonl:2: invalid JSON" in refused.stderr
    assert "--skip-bad-lines" in refused.stderr
    done = run("ingest", path, "-w", "ws", "--skip-bad-lines", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["records"] == 2 and report["dropped"] == {"input:bad_line": 2}
    rejects = [json.loads(x) for x in Path(report["rejects_file"]).read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in rejects] == [(2, "bad_line"), (3, "bad_line")]
    assert rejects[0]["problem"].startswith("invalid JSON")
    assert rejects[1]["problem"] == "'prompt' and 'completion' must both be strings"


def test_a_table_given_as_jsonl_is_named(tmp_path: Path) -> None:
    assert run("init", "ws", "--no-encryption", cwd=tmp_path).returncode == 0
    path = tmp_path / "eval.jsonl"
    path.write_text("prompt,completion\nWhat is 2+2?,4\n")
    done = run("evalset", "add", path, "--suite", "math", "-w", "ws", cwd=tmp_path)
    assert done.returncode == 2 and "looks like a CSV/TSV table" in done.stderr
    table = path.rename(tmp_path / "eval.csv")
    added = run("evalset", "add", table, "--suite", "math", "-w", "ws", "--json", cwd=tmp_path)
    assert added.returncode == 0, added.stderr

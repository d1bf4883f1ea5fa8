"""The CLI contract, through the real `tuneloop` executable: dedup, decontaminate, workspaces.

Expected Jaccard values come from a tiny reference implementation (lowercase, split on
non-alphanumerics, sets of word 5-grams), not from tuneloop itself.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from support.clirun import run

CANARY = "TUNELOOP-CANARY-0a1b2c3d4e"


def ok(*args: Any, cwd: Path, env: dict[str, str] | None = None) -> str:
    res = run(*args, cwd=cwd, env=env)
    assert res.returncode == 0, res.stderr
    return res.stdout


def shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = [w for w in re.split(r"[^0-9a-z]+", text.lower()) if w]
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: str, b: str, n: int = 5) -> float:
    sa, sb = shingles(a, n), shingles(b, n)
    return len(sa & sb) / len(sa | sb)


def words(tag: str, n: int = 60) -> list[str]:
    return [f"{tag}{i}" for i in range(n)]


def text(tag: str, n: int = 60, changes: dict[int, str] | None = None) -> str:
    ws = words(tag, n)
    for i, w in (changes or {}).items():
        ws[i] = w
    return " ".join(ws)


def line(obj: dict[str, Any]) -> bytes:
    # Unusual spacing: kept records must be copied byte for byte, never re-serialized.
    return json.dumps(obj, separators=(" ,", " : "), ensure_ascii=False).encode()


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


T = text("base")
NEAR = text("base", changes={30: "CHANGED"})
FAR = text("base", changes={10: "x1", 30: "x2", 50: "x3"})


def dedup(tmp: Path, lines: list[bytes], *extra: Any) -> tuple[list[bytes], list[dict[str, Any]]]:
    src = write_lines(tmp / "in.jsonl", lines)
    ok("dedup", src, "--out", tmp / "out.jsonl", "--dups", tmp / "dups.jsonl", *extra, cwd=tmp)
    return (tmp / "out.jsonl").read_bytes().splitlines(), jsonl(tmp / "dups.jsonl")


def check_dups(rows: list[dict[str, Any]], expected: list[tuple[Any, Any, float]]) -> None:
    assert [(r["id"], r["duplicate_of"]) for r in rows] == [(i, d) for i, d, _ in expected]
    for row, (_, _, j) in zip(rows, expected, strict=True):
        assert set(row) >= {"id", "duplicate_of", "jaccard"}
        assert abs(row["jaccard"] - j) < 1e-6


@pytest.mark.parametrize("with_ids", [True, False])
def test_dedup_keeps_first_of_each_cluster(tmp_path: Path, with_ids: bool) -> None:
    assert jaccard(T, NEAR) >= 0.8 > jaccard(T, FAR)
    names = {"orig": T, "other": text("other"), "copy": T, "near": NEAR, "far": FAR}
    lines = [line({"id": n, "text": t} if with_ids else {"text": t}) for n, t in names.items()]
    src = write_lines(tmp_path / "in.jsonl", lines)
    out, dups = tmp_path / "out.jsonl", tmp_path / "dups.jsonl"
    summary = json.loads(ok("dedup", src, "--out", out, "--dups", dups, "--json", cwd=tmp_path))
    assert out.read_bytes().splitlines() == [lines[0], lines[1], lines[4]]
    ids = list(names) if with_ids else list(range(5))
    check_dups(jsonl(dups), [(ids[2], ids[0], 1.0), (ids[3], ids[0], jaccard(T, NEAR))])
    assert (summary["records_in"], summary["records_out"], summary["duplicates"]) == (5, 3, 2)
    assert isinstance(summary["seconds"], float) and summary["seconds"] >= 0


def test_dedup_below_threshold_is_kept(tmp_path: Path) -> None:
    assert 0.8 <= jaccard(T, NEAR) < 0.9
    lines = [line({"id": i, "text": t}) for i, t in enumerate([T, NEAR, T])]
    out, dups = dedup(tmp_path, lines, "--threshold", "0.9")
    assert out == lines[:2]
    check_dups(dups, [(2, 0, 1.0)])


def test_dedup_without_dups_option(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "in.jsonl", [line({"text": T}), line({"text": T})])
    ok("dedup", src, "--out", tmp_path / "out.jsonl", cwd=tmp_path)
    assert (tmp_path / "out.jsonl").read_bytes() == line({"text": T}) + b"\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [((), []), (("--text-field", "body"), [("b", "a", 1.0), ("c", "a", jaccard(T, NEAR))])],
)
def test_dedup_text_field(tmp_path: Path, extra: tuple[str, ...], expected: list[Any]) -> None:
    bodies = {"a": T, "b": T, "c": NEAR}
    lines = [line({"id": k, "body": v, "text": text(k)}) for k, v in bodies.items()]
    out, dups = dedup(tmp_path, lines, *extra)
    check_dups(dups, expected)
    assert len(out) == 3 - len(expected)


def chat(parts: list[str]) -> list[dict[str, str]]:
    return [
        {"role": r, "content": p}
        for r, p in zip(["user", "assistant", "user"], parts, strict=False)
    ]


def test_dedup_compares_chat_and_prompt_completion_text(tmp_path: Path) -> None:
    w, near = T.split(), NEAR.split()
    halves = [" ".join(w[:25]), " ".join(w[25:])]
    thirds = [" ".join(near[:20]), " ".join(near[20:40]), " ".join(near[40:])]
    lines = [
        line({"id": "t", "text": T}),
        line({"id": "chat", "messages": chat(halves)}),
        line({"id": "pc", "prompt": halves[0], "completion": halves[1]}),
        line({"id": "chat-near", "messages": chat(thirds)}),
        line({"id": "pc-other", "prompt": text("p", 30), "completion": text("q", 30)}),
    ]
    out, dups = dedup(tmp_path, lines)
    assert out == [lines[0], lines[4]]
    check_dups(dups, [("chat", "t", 1.0), ("pc", "t", 1.0), ("chat-near", "t", jaccard(T, NEAR))])


# --- decontaminate ---------------------------------------------------------------------------

EVAL: list[dict[str, Any]] = [
    {"id": "e-exact", "text": text("exa")},
    {"id": "e-near", "text": text("nea")},
    {"id": 7, "text": text("pas", 40)},
    {"text": f"{text('can', 30)} canary: {CANARY}"},  # no id: its 0-based line, 3
]
EXACT_COPY = "  " + ", ".join(w.upper() for w in words("exa")) + "!"
NEAR_COPY = text("nea", changes={58: "swapped", 59: "words"})
PASTED = f"{text('pre', 200)} {text('pas', 40)} {text('post', 200)}"
# (record, expected method, expected eval_id, expected report id); method None: clean.
DECON_CASES: list[tuple[dict[str, Any], str | None, Any, Any]] = [
    ({"id": "a", "text": EXACT_COPY}, "exact", "e-exact", "a"),
    ({"id": "b", "text": NEAR_COPY}, "minhash", "e-near", "b"),
    ({"id": "c", "text": PASTED}, "ngram", 7, "c"),
    ({"text": f"{text('unrel', 40)} {CANARY} more"}, "canary", 3, 3),
    ({"id": "e1", "text": text("clean")}, None, None, None),
    ({"messages": chat([text("hi", 20), text("yo", 20)])}, None, None, None),
]


def test_decontaminate_methods(tmp_path: Path) -> None:
    assert jaccard(NEAR_COPY, EVAL[1]["text"]) >= 0.8
    ev = write_lines(tmp_path / "eval.jsonl", [line(o) for o in EVAL])
    lines = [line(rec) for rec, *_ in DECON_CASES]
    src = write_lines(tmp_path / "in.jsonl", lines)
    clean, report = tmp_path / "clean.jsonl", tmp_path / "report.jsonl"
    args = ("decontaminate", src, "--against", ev, "--out", clean, "--report", report, "--json")
    summary = json.loads(ok(*args, cwd=tmp_path))
    flagged = [c for c in DECON_CASES if c[1] is not None]
    rows = jsonl(report)
    assert [(r["id"], r["method"], r["eval_id"]) for r in rows] == [
        (rid, method, eid) for _, method, eid, rid in flagged
    ]
    for row in rows:
        assert set(row) >= {"id", "eval_id", "method", "score"}
        assert type(row["score"]) is float and 0.0 < row["score"] <= 1.0
    by_method = {r["method"]: r["score"] for r in rows}
    assert by_method["exact"] == by_method["canary"] == 1.0
    assert by_method["minhash"] >= 0.8
    assert abs(by_method["minhash"] - jaccard(NEAR_COPY, EVAL[1]["text"])) < 1e-6
    assert by_method["ngram"] >= 0.5
    assert clean.read_bytes().splitlines() == [
        lines[i] for i, c in enumerate(DECON_CASES) if not c[1]
    ]
    assert summary["records_in"] == len(DECON_CASES)
    assert summary["records_out"] == len(DECON_CASES) - len(flagged)
    assert summary["flagged"] == len(flagged)
    assert summary["by_method"] == {"exact": 1, "minhash": 1, "ngram": 1, "canary": 1}


def test_dedup_null_id_falls_back_to_line_number(tmp_path: Path) -> None:
    _, dups = dedup(tmp_path, [line({"id": None, "text": T})] * 2)
    check_dups(dups, [(1, 0, 1.0)])


def test_decontaminate_eval_ids_do_not_collide(tmp_path: Path) -> None:
    ev = write_lines(tmp_path / "eval.jsonl", [line({"id": "1", "text": T}), line({"text": FAR})])
    src = write_lines(tmp_path / "in.jsonl", [line({"text": T}), line({"text": FAR})])
    out, report = tmp_path / "clean.jsonl", tmp_path / "report.jsonl"
    ok("decontaminate", src, "--against", ev, "--out", out, "--report", report, cwd=tmp_path)
    assert [(r["id"], r["eval_id"]) for r in jsonl(report)] == [(0, "1"), (1, 1)]


# --- workspaces ------------------------------------------------------------------------------


def test_init_and_workspace_discovery(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    created = json.loads(ok("init", ws, "--json", cwd=tmp_path))
    assert Path(created["workspace"]) == ws.resolve()
    assert (ws / "tuneloop.toml").is_file()
    sub = ws / "train" / "datasets"
    assert json.loads(ok("datasets", "list", "--json", cwd=sub)) == []
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert json.loads(ok("datasets", "list", "--json", "--workspace", ws, cwd=elsewhere)) == []
    env = {"TUNELOOP_WORKSPACE": str(ws)}
    assert json.loads(ok("datasets", "list", "--json", cwd=elsewhere, env=env)) == []


@pytest.mark.parametrize("how", ["cwd", "option", "env"])
def test_missing_workspace(tmp_path: Path, how: str) -> None:
    missing = tmp_path / "nope"
    extra = ["--workspace", missing] if how == "option" else []
    env = {"TUNELOOP_WORKSPACE": str(missing)} if how == "env" else None
    res = run("datasets", "list", *extra, cwd=tmp_path, env=env)
    assert res.returncode == 2
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and "tuneloop init" in lines[0], res.stderr
    assert list(tmp_path.iterdir()) == []

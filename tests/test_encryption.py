"""Encryption at rest: with ``[security] encryption = true`` no planted text is found in any
byte under the workspace, everything still reads back, and a wrong or missing key stops a
command in one line (exit code 2) before anything is read or written."""

from __future__ import annotations

import json
import secrets
import stat
from pathlib import Path
from typing import Any

import pytest

from tuneloop.datasets import DatasetStore
from tuneloop.encryption import files as sealed_files
from tuneloop.encryption.db import connect
from tuneloop.encryption.keys import FileKey, Keys, LocalKms, provider
from tuneloop.erasure import find_bytes, find_plain
from tuneloop.errors import EncryptionError
from tuneloop.state.serving_log import ResponseRow, ServingLog
from tuneloop.train.replay import ReplayBuffer
from tuneloop.workspace import Workspace

from support.clirun import run

SECRET = "AARDVARK2718 pelican passphrase"
EVAL_SECRET = "WOMBAT3141 harbour codeword"
U1_SECRET = "NARWHAL1618 only user one wrote this"


def interactions(n: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        rows.append({
            "id": f"r{i}", "user_id": f"u{i % 7}", "conversation_id": f"c{i}",
            "messages": [
                {"role": "user", "content": f"question {i}: my note reads {SECRET}, what now?"
                 + (f" {U1_SECRET}" if i % 7 == 1 else "")},
                {"role": "assistant", "content": f"Answer {i}: keep {SECRET} somewhere safe."},
            ],
        })  # fmt: skip
    rows.append({**rows[0], "id": "dup", "conversation_id": "c-dup"})  # dropped by curation
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def key() -> str:
    return secrets.token_hex(32)


@pytest.fixture
def encrypted(tmp_path: Path, key: str, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """A workspace with encryption on, after ingest, curate, evalset add and served traffic."""
    monkeypatch.setenv("TUNELOOP_KEY", key)
    root = tmp_path / "ws"
    assert run("init", root, "--no-encryption", cwd=tmp_path).returncode == 0  # then: env key
    Workspace(root).configure({"security.encryption": True})
    data = write_jsonl(tmp_path / "in.jsonl", interactions(40))
    item = {"id": "e1", "prompt": f"my code is {EVAL_SECRET}, ok?", "completion": "ok"}
    evals = write_jsonl(tmp_path / "eval.jsonl", [item])
    for args in (("evalset", "add", evals, "--suite", "task"), ("ingest", data), ("curate",)):
        done = run(*args, "--workspace", root, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    ws = Workspace(root)
    log = ServingLog(ws.serving_log_path)
    messages = [{"role": "user", "content": f"what about {SECRET}? {U1_SECRET}"}]
    log.append([ResponseRow("resp-1", "local", messages, "production", "1",
                            answer=f"{SECRET} it is", user_id="u1", created_unix=0.0)])  # fmt: skip
    log.close()
    store = DatasetStore(ws.datasets_dir)
    ReplayBuffer(ws.train_dir / "replay").add_round(store.load(store.versions()[-1]), "round-1")
    (tmp_path / "in.jsonl").unlink()
    (tmp_path / "eval.jsonl").unlink()
    return ws


def needles() -> list[bytes]:
    return [SECRET.encode(), EVAL_SECRET.encode()]


def test_no_planted_text_in_any_byte_on_disk(encrypted: Workspace) -> None:
    assert find_bytes(encrypted.root, needles()) == {}
    # The check can fail: what the files and stores decrypt to holds both texts.
    plain = find_plain(encrypted.root, needles())
    assert {"train/store.sqlite", "eval/evalstore.sqlite", "serve/log.sqlite"} <= set(plain)
    assert any(p.endswith("data.parquet") for p in plain)
    rejects = next(encrypted.datasets_dir.glob("*/rejects.jsonl"))
    rows = sealed_files.read_bytes(rejects).splitlines()
    assert sealed_files.sealed(rejects) and rows
    assert SECRET in rows[0].decode() and json.loads(rows[0])["reason"]
    assert any(p.endswith("buffer.json") for p in plain)


def test_everything_reads_back(encrypted: Workspace, tmp_path: Path) -> None:
    store = DatasetStore(encrypted.datasets_dir)
    version = store.versions()[-1]
    assert store.verify(version) == []
    assert any(SECRET in json.dumps(r.to_dict()) for r in store.load(version))
    done = run("evalset", "verify", "--workspace", encrypted.root, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    buffer = ReplayBuffer(encrypted.train_dir / "replay")
    assert buffer.sample(3, set(), seed=0)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TUNELOOP_KEY": "ab" * 32}, "wrong key"),
        ({"TUNELOOP_KEY": "not-hex"}, "64 hex characters"),
        ({"TUNELOOP_KEY": ""}, "$TUNELOOP_KEY is not set"),
    ],
)
def test_wrong_or_missing_key_is_one_line(
    encrypted: Workspace, tmp_path: Path, env: dict[str, str], message: str
) -> None:
    before = {p: p.stat().st_mtime_ns for p in encrypted.root.rglob("*") if p.is_file()}
    done = run("evalset", "verify", "--workspace", encrypted.root, cwd=tmp_path, env=env)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr
    after = {p: p.stat().st_mtime_ns for p in encrypted.root.rglob("*") if p.is_file()}
    assert after == before


def test_forget_checks_what_the_disk_decrypts_to(encrypted: Workspace, tmp_path: Path) -> None:
    assert len(find_plain(encrypted.root, [U1_SECRET.encode()])) >= 3
    done = run("forget", "--user", "u1", "--workspace", encrypted.root, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    receipt = json.loads(done.stdout)
    assert receipt["check"]["clean"] is True
    # u1's rows are gone from the decrypted stores, other users' rows are still there.
    assert find_plain(encrypted.root, [U1_SECRET.encode()]) == {}
    with connect(encrypted.serving_log_path) as db:
        assert (
            db.execute("SELECT count(*) FROM responses WHERE answer IS NOT NULL").fetchone()[0] == 0
        )
    store = DatasetStore(encrypted.datasets_dir)
    users = {r.user_id for r in store.load(store.versions()[-1])}
    assert "u1" not in users and "u2" in users


def test_files_outside_an_encrypted_workspace_stay_plain(tmp_path: Path) -> None:
    path = tmp_path / "plain.jsonl"
    assert sealed_files.seal_for(path, b"abc") == b"abc"
    assert sealed_files.read_bytes(write_bytes(path, b"abc")) == b"abc"


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_sealed_file_detects_tampering(tmp_path: Path) -> None:
    keys = Keys.derive(bytes(32))
    blob = bytearray(sealed_files.seal(b"records", keys.files))
    blob[-1] ^= 1
    with pytest.raises(EncryptionError, match="changed or cut short"):
        sealed_files.unseal(bytes(blob), keys.files, tmp_path / "x")


def test_key_providers(tmp_path: Path) -> None:
    data_key, master = secrets.token_bytes(32), secrets.token_bytes(32)
    (tmp_path / "master.key").write_text(master.hex())
    (tmp_path / "data.key.wrapped").write_bytes(LocalKms.wrap(data_key, master))
    kms = LocalKms(tmp_path / "data.key.wrapped", tmp_path / "master.key")
    assert kms.key() == data_key
    (tmp_path / "other.key").write_text(secrets.token_hex(32))
    with pytest.raises(EncryptionError, match="does not unwrap"):
        LocalKms(tmp_path / "data.key.wrapped", tmp_path / "other.key").key()
    assert provider("file:master.key", tmp_path) == FileKey(tmp_path / "master.key")
    with pytest.raises(EncryptionError, match="env:VAR"):
        provider("vault", tmp_path)


def test_init_encrypts_by_default_with_a_key_outside_the_workspace(
    tmp_path: Path, key_dir: Path
) -> None:
    root = tmp_path / "ws"
    done = run("init", root, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    assert made["encryption"] is True and made["key"].startswith(f"file:{key_dir}")
    path = Path(made["key"].removeprefix("file:"))
    assert root not in path.parents and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(bytes.fromhex(path.read_text().strip())) == 32
    data = write_jsonl(tmp_path / "in.jsonl", interactions(12))
    assert run("ingest", data, "--workspace", root, cwd=tmp_path).returncode == 0
    assert find_bytes(root, [SECRET.encode()]) == {}  # the store is sealed
    assert "train/store.sqlite" in find_plain(root, [SECRET.encode()])  # and holds the text
    # a key folder inside the workspace is refused, and nothing is written
    inside = tmp_path / "ws2"
    refused = run("init", inside, cwd=tmp_path, env={"TUNELOOP_KEY_DIR": str(inside / "k")})
    assert refused.returncode == 2 and "protects nothing" in refused.stderr
    assert not inside.exists()

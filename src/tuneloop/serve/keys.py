"""Adding an API key's hash to tuneloop.toml without touching the rest of the file."""

from __future__ import annotations

from pathlib import Path

from tuneloop.config import load_config, parse_config
from tuneloop.errors import ConfigError
from tuneloop.jsonl import atomic_writer
from tuneloop.serve.auth import key_sha256, new_key


def add_key(config_path: Path, name: str, scopes: list[str]) -> str:
    """Append ``[serve.api_keys.NAME]``; the new file is validated before it replaces the old."""
    current = load_config(config_path)
    if name in current.serve.api_keys:
        raise ConfigError(f"{config_path}: a key named {name!r} exists; pick another name")
    key = new_key()
    entry = (
        f'\n[serve.api_keys.{name}]\nsha256 = "{key_sha256(key)}"\n'
        f"scopes = [{', '.join(repr(s).replace(chr(39), chr(34)) for s in scopes)}]\n"
    )
    text = config_path.read_text(encoding="utf-8").rstrip("\n") + "\n" + entry
    parse_config(text, config_path)
    with atomic_writer(config_path, "w") as fh:
        fh.write(text)
    return key

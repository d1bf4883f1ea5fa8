"""Where a workspace's key comes from, and which key a path under a workspace uses.

The key is never in ``tuneloop.toml`` itself: the file says where to get it.

- ``env:VAR``: 64 hex characters (32 bytes) in an environment variable;
- ``file:PATH``: the same in a file, which should be readable by the service user only;
- ``kms:MODULE:NAME``: a KMS hook, a :class:`KeyProvider` (or a factory returning one) that
  fetches or unwraps the key (AWS KMS, Vault, an HSM). :class:`LocalKms` is the local one:
  a data key wrapped (AES-GCM) under a master key kept outside the workspace.

Two subkeys are derived with HKDF-SHA256, one for SQLCipher and one for files, so a key used
for one purpose is never used for the other.
"""

from __future__ import annotations

import importlib
import os
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tuneloop.errors import EncryptionError

CONFIG_NAME = "tuneloop.toml"
KEY_BYTES = 32
NEW_KEY_HINT = 'make one with: python -c "import secrets; print(secrets.token_hex(32))"'


class KeyProvider(Protocol):
    """Anything that hands out the workspace's 32-byte key."""

    def key(self) -> bytes: ...


def parse_key(text: str, where: str) -> bytes:
    """32 bytes from 64 hex characters, or one line saying what is wrong."""
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        raw = b""
    if len(raw) != KEY_BYTES:
        raise EncryptionError(
            f"{where}: the key must be 64 hex characters (32 bytes); {NEW_KEY_HINT}"
        )
    return raw


@dataclass(frozen=True)
class EnvKey:
    var: str

    def key(self) -> bytes:
        value = os.environ.get(self.var)
        if not value:
            raise EncryptionError(
                f"the workspace is encrypted and ${self.var} is not set; export the key "
                f"({NEW_KEY_HINT})"
            )
        return parse_key(value, f"${self.var}")


@dataclass(frozen=True)
class FileKey:
    path: Path

    def key(self) -> bytes:
        try:
            text = self.path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise EncryptionError(
                f"{self.path}: cannot read the key file ({exc}); check the path"
            ) from None
        return parse_key(text, str(self.path))


@dataclass(frozen=True)
class LocalKms:
    """Envelope encryption on one machine: ``wrapped`` holds the data key sealed with AES-GCM
    under the master key in ``master`` (keep it off the workspace's disk). What a cloud KMS
    does with its own master key."""

    wrapped: Path
    master: Path

    def key(self) -> bytes:
        master = FileKey(self.master).key()
        try:
            blob = self.wrapped.read_bytes()
            return AESGCM(master).decrypt(blob[:12], blob[12:], b"tuneloop data key")
        except OSError as exc:
            raise EncryptionError(f"{self.wrapped}: cannot read the wrapped key ({exc})") from None
        except Exception:
            raise EncryptionError(
                f"{self.wrapped}: the master key does not unwrap this data key; check both files"
            ) from None

    @staticmethod
    def wrap(data_key: bytes, master: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(master).encrypt(nonce, data_key, b"tuneloop data key")


def provider(spec: str, root: Path) -> KeyProvider:
    """The provider a ``security.key`` setting names."""
    kind, _, rest = spec.partition(":")
    if kind == "env" and rest:
        return EnvKey(rest)
    if kind == "file" and rest:
        path = Path(rest).expanduser()
        return FileKey(path if path.is_absolute() else root / path)
    if kind == "kms" and ":" in rest:
        module, _, name = rest.partition(":")
        try:
            target = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise EncryptionError(
                f"security.key = {spec!r}: cannot load the KMS hook ({exc})"
            ) from None
        found = target() if callable(target) and not hasattr(target, "key") else target
        if not hasattr(found, "key"):
            raise EncryptionError(f"security.key = {spec!r}: the hook has no key() method")
        return found  # type: ignore[no-any-return]
    raise EncryptionError(
        f"security.key = {spec!r}: use 'env:VAR', 'file:PATH' or 'kms:MODULE:NAME'"
    )


@dataclass(frozen=True)
class Keys:
    """The two subkeys of one workspace."""

    sqlite: bytes
    files: bytes

    @classmethod
    def derive(cls, master: bytes) -> Keys:
        def sub(purpose: bytes) -> bytes:
            return HKDF(hashes.SHA256(), KEY_BYTES, salt=None, info=purpose).derive(master)

        return cls(sqlite=sub(b"tuneloop sqlcipher"), files=sub(b"tuneloop files"))


def workspace_root(path: Path) -> Path | None:
    """The nearest folder at or above ``path`` that holds a ``tuneloop.toml``."""
    here = path.resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder
    return None


def key_for(path: Path) -> Keys | None:
    """The keys for a file under an encrypted workspace; None where encryption is off."""
    root = workspace_root(path if path.is_dir() else path.parent)
    if root is None:
        return None
    config = root / CONFIG_NAME
    stat = config.stat()
    return _keys(root, stat.st_mtime_ns, stat.st_size, _env_fingerprint())


def _env_fingerprint() -> tuple[tuple[str, str], ...]:
    """Environment variables a key may come from, so a changed variable is seen."""
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("TUNELOOP")))


@lru_cache(maxsize=64)
def _keys(root: Path, _mtime: int, _size: int, _env: object) -> Keys | None:
    try:
        settings = tomllib.loads((root / CONFIG_NAME).read_text(encoding="utf-8")).get(
            "security", {}
        )
    except (OSError, tomllib.TOMLDecodeError):
        return None  # the config's own loader reports a broken file, with its line
    if not settings.get("encryption", False):
        return None
    spec = settings.get("key", "env:TUNELOOP_KEY")
    return Keys.derive(provider(str(spec), root).key())


KEY_DIR_VAR = "TUNELOOP_KEY_DIR"


def key_dir() -> Path:
    """Where ``tuneloop init`` keeps the keys it makes: $TUNELOOP_KEY_DIR, else
    $XDG_CONFIG_HOME/tuneloop/keys, else ~/.config/tuneloop/keys: off the workspace's folder,
    since a key beside the data it protects protects nothing once the folder is copied."""
    if os.environ.get(KEY_DIR_VAR):
        return Path(os.environ[KEY_DIR_VAR]).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config).expanduser() / "tuneloop" / "keys"


def create_key_file(root: Path, name: str) -> Path:
    """A new random key for the workspace at ``root``, in :func:`key_dir`, owner-only (0600 in a
    0700 folder). Refuses a key folder inside the workspace."""
    folder = key_dir().resolve()
    if folder == root.resolve() or root.resolve() in folder.parents:
        raise EncryptionError(
            f"{folder}: the key folder is inside the workspace {root}; a key kept beside the "
            f"data protects nothing: set ${KEY_DIR_VAR} to a folder outside it"
        )
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:40] or "workspace"
    path = folder / f"{safe}-{os.urandom(4).hex()}.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(os.urandom(KEY_BYTES).hex() + "\n")
    return path

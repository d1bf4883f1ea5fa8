"""Files with user text, sealed with AES-256-GCM when their workspace is encrypted.

A sealed file is ``MAGIC`` + a 12-byte random nonce + the ciphertext and its 16-byte tag, over
the whole file: a changed byte, a truncated file or a wrong key fails the tag check instead of
giving wrong records. Readers recognise the header, so plain files (written before encryption
was turned on, or outside a workspace) still read.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tuneloop.encryption.keys import key_for
from tuneloop.errors import EncryptionError

MAGIC = b"TUNELOOP-SEALED-1\n"
_NONCE = 12


def is_sealed(head: bytes) -> bool:
    return head.startswith(MAGIC)


def seal(data: bytes, key: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return MAGIC + nonce + AESGCM(key).encrypt(nonce, data, MAGIC)


def unseal(blob: bytes, key: bytes, path: Path) -> bytes:
    body = blob[len(MAGIC) :]
    try:
        return AESGCM(key).decrypt(body[:_NONCE], body[_NONCE:], MAGIC)
    except InvalidTag:
        raise EncryptionError(
            f"{path}: cannot decrypt: wrong key, or the file was changed or cut short; "
            "check security.key"
        ) from None


def seal_for(path: Path, data: bytes) -> bytes:
    """``data`` as it should be written at ``path``: sealed under an encrypted workspace."""
    keys = key_for(path)
    return seal(data, keys.files) if keys is not None else data


def seal_line(path: Path, line: str) -> str:
    """One line of an append-only log at ``path``, sealed on its own under an encrypted
    workspace (``sealed:`` + base64), as it is: elsewhere."""
    keys = key_for(path)
    if keys is None:
        return line
    return "sealed:" + base64.b64encode(seal(line.encode("utf-8"), keys.files)).decode("ascii")


def read_bytes(path: Path) -> bytes:
    """The plain bytes of a file, sealed or not."""
    blob = path.read_bytes()
    if not is_sealed(blob):
        return blob
    keys = key_for(path)
    if keys is None:
        raise EncryptionError(
            f"{path}: is encrypted, but its workspace has encryption off; set [security] "
            "encryption = true and its key in tuneloop.toml"
        )
    return unseal(blob, keys.files, path)


def sealed(path: Path) -> bool:
    """Whether ``path`` is a sealed file."""
    with path.open("rb") as fh:
        return is_sealed(fh.read(len(MAGIC)))

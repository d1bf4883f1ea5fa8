"""API keys: bearer tokens, stored as sha256, each naming a tenant and its scopes.

Keys come from ``[serve.api_keys.NAME]`` in tuneloop.toml (hash and scopes; ``tuneloop keys
create`` writes the entry and shows the key once) and from ``$TUNELOOP_API_KEYS``
(``name:key[:admin],…``, for secrets managers that inject environment variables). A plain
sha256 is enough for keys of 256 random bits: there is nothing to brute-force, so a slow hash
would only slow every request. Hashes are compared in constant time.

Scopes: ``inference`` (chat, models, feedback) and ``admin`` (canary, promote, rollback,
adapter loads). The tenant is the key's name: feedback is accepted only from the tenant that
made the request. With no key configured, every caller is the ``local`` tenant with all
scopes, and the server refuses to listen beyond loopback.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from tuneloop.config import ApiKeyConfig
from tuneloop.errors import ConfigError
from tuneloop.serve.errors import APIError
from tuneloop.serve.limits import KeyLimits
from tuneloop.state.serving_log import LOCAL_TENANT

ENV_KEYS = "TUNELOOP_API_KEYS"
KEY_PREFIX = "tl-"


@dataclass(frozen=True, slots=True)
class Principal:
    tenant: str
    scopes: frozenset[str]
    limits: KeyLimits = field(default_factory=KeyLimits)


LIMIT_NAMES = {"concurrent": "max_concurrent", "tpm": "tokens_per_minute",
               "prompt": "max_prompt_tokens", "max_tokens": "max_tokens"}  # fmt: skip


def _env_entry(i: int, entry: str) -> tuple[str, Principal]:
    """``NAME:KEY[:admin][:concurrent=N][:tpm=N][:prompt=N][:max_tokens=N]``."""
    parts = entry.split(":")
    bad = ConfigError(
        f"${ENV_KEYS} entry {i + 1} is not NAME:KEY[:admin][:concurrent=N][:tpm=N][:prompt=N]"
        "[:max_tokens=N]; fix the variable"
    )
    if len(parts) < 2 or not all(parts[:2]):
        raise bad
    limits: dict[str, int] = {}
    admin = False
    for extra in parts[2:]:
        name, _, value = extra.partition("=")
        if extra == "admin":
            admin = True
        elif name in LIMIT_NAMES and value.isascii() and value.isdigit() and int(value) > 0:
            limits[LIMIT_NAMES[name]] = int(value)
        else:
            raise bad
    scopes = {"inference", "admin"} if admin else {"inference"}
    return key_sha256(parts[1]), Principal(parts[0], frozenset(scopes), KeyLimits(**limits))


def key_sha256(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _env_keys(raw: str) -> dict[str, Principal]:
    entries = [p.strip() for p in raw.split(",")]
    return dict(_env_entry(i, entry) for i, entry in enumerate(entries) if entry)


class KeyRing:
    def __init__(self, by_hash: Mapping[str, Principal]) -> None:
        self._by_hash = dict(by_hash)

    @classmethod
    def load(
        cls, configured: Mapping[str, ApiKeyConfig], env: Mapping[str, str] | None = None
    ) -> KeyRing:
        env = os.environ if env is None else env
        keys = {k.sha256: Principal(name, frozenset(k.scopes), k.limits())
                for name, k in configured.items()}  # fmt: skip
        keys.update(_env_keys(env.get(ENV_KEYS, "")))
        return cls(keys)

    @property
    def enabled(self) -> bool:
        return bool(self._by_hash)

    def authenticate(self, authorization: str | None) -> Principal:
        if not self.enabled:
            return Principal(LOCAL_TENANT, frozenset({"inference", "admin"}))
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise APIError(
                401,
                "missing API key: send 'Authorization: Bearer <key>'",
                "missing_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        digest = key_sha256(token.strip())
        for known, principal in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                return principal
        raise APIError(
            401,
            "invalid API key; check the key or ask an admin for a new one",
            "invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )


def require(principal: Principal, scope: str) -> None:
    if scope not in principal.scopes:
        raise APIError(
            403,
            f"this API key ({principal.tenant}) lacks the '{scope}' scope; use an {scope} key",
            "insufficient_scope",
        )

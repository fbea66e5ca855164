"""Who is calling: the key's SHA-256 looked up among the configured entries (keys are hashed at
rest, as LiteLLM stores its virtual keys; keys are long random strings, so a plain SHA-256 is
enough and a lookup costs one hash)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import SecretStr

from distillserve.config.keys import KeyEntry, KeysConfig

#: Keys of ``server.api_keys`` (plain, the older setting) and the caller when no key is configured:
#: no tenant, no limits, every model and route, the force header honoured (the behaviour before
#: keys had policies).
_UNRESTRICTED = {"tenant": "", "may_force_route": True}


def hash_key(key: str) -> str:
    """The hex SHA-256 that the config holds for ``key``."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    policy: KeyEntry
    tenant: str | None  # None: a key without a tenant (or no auth at all)
    token: str | None  # the bearer token as sent; only the router's per-key overrides read it

    @property
    def key_id(self) -> str:
        """A short, non-secret name for the key in limiter storage and logs."""
        return self.policy.sha256[:16]


class KeyRing:
    def __init__(self, entries: Iterable[KeyEntry], plain_keys: Iterable[SecretStr] = ()) -> None:
        self._by_hash = {e.sha256: e for e in entries}
        for key in plain_keys:
            digest = hash_key(key.get_secret_value())
            self._by_hash.setdefault(digest, KeyEntry(sha256=digest, **_UNRESTRICTED))

    @classmethod
    def from_config(cls, keys: KeysConfig, plain_keys: Iterable[SecretStr] = ()) -> KeyRing:
        return cls(keys.all_entries(), plain_keys)

    @property
    def required(self) -> bool:
        """Whether a request needs a key at all (any key configured)."""
        return bool(self._by_hash)

    def anonymous(self, token: str | None) -> Caller:
        return Caller(KeyEntry(sha256="0" * 64, **_UNRESTRICTED), None, token)

    def lookup(self, token: str) -> Caller | None:
        # A dict lookup by digest: timing reveals nothing an attacker can steer towards a key.
        entry = self._by_hash.get(hash_key(token))
        if entry is None:
            return None
        return Caller(entry, entry.tenant or None, token)

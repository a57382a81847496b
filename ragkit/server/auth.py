"""API keys: who may call the service, and on which collections.

Keys come from RAGKIT_API_KEY (every collection) and/or a keys file mapping each key to the collections
it may use. Only SHA-256 digests are kept, and a presented key is compared against every digest with
`hmac.compare_digest`, without stopping at a match, so neither timing nor length tells an attacker how
close a guess was or which key exists.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path

from ragkit.errors import InputError

MIN_KEY_LENGTH = 16
ALL_COLLECTIONS = "*"
_HOW_TO_MAKE_ONE = "make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"


@dataclass(frozen=True)
class Grant:
    """What an authenticated caller may do: `collections` None means every collection."""

    collections: frozenset[str] | None

    def allows(self, collection: str) -> bool:
        return self.collections is None or collection in self.collections


OPEN = Grant(collections=None)


class KeyRing:
    """The configured keys. An empty ring means authentication is off (the CLI allows that only on
    loopback, or with --insecure)."""

    def __init__(self, grants: dict[str, Grant]) -> None:
        self._grants = [(hashlib.sha256(key.encode()).digest(), grant) for key, grant in grants.items()]

    @classmethod
    def load(cls, api_key: str | None = None, keys_file: Path | None = None) -> KeyRing:
        """Keys from RAGKIT_API_KEY's value (all collections) and a JSON keys file.

        The file maps each key to a list of collection names or to "*":
        `{"k3y-for-team-a...": ["manuals", "contracts"], "admin-k3y...": "*"}`.
        """
        grants: dict[str, Grant] = {}
        if api_key:
            grants[_checked(api_key, "RAGKIT_API_KEY")] = OPEN
        if keys_file is not None:
            grants.update(_read_keys_file(keys_file))
        return cls(grants)

    @property
    def enabled(self) -> bool:
        return bool(self._grants)

    def lookup(self, presented: str) -> Grant | None:
        """The grant of the presented key, or None; takes the same time whichever key matches."""
        digest = hashlib.sha256(presented.encode()).digest()
        found = None
        for known, grant in self._grants:
            if hmac.compare_digest(digest, known):
                found = grant
        return found


def _read_keys_file(path: Path) -> dict[str, Grant]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read the keys file {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise InputError(f"the keys file {path} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict) or not raw:
        raise InputError(
            f"the keys file {path} must be a JSON object mapping each key to a list of collections or "
            f'"{ALL_COLLECTIONS}", e.g. {{"<key>": ["manuals"]}}'
        )
    grants = {}
    for key, allowed in raw.items():
        where = f"a key in {path}"
        if allowed == ALL_COLLECTIONS:
            grants[_checked(key, where)] = OPEN
        elif isinstance(allowed, list) and allowed and all(isinstance(c, str) and c for c in allowed):
            grants[_checked(key, where)] = Grant(frozenset(allowed))
        else:
            raise InputError(
                f"{where} maps to {allowed!r}: expected a non-empty list of collection names or "
                f'"{ALL_COLLECTIONS}"'
            )
    return grants


def _checked(key: str, where: str) -> str:
    if len(key) < MIN_KEY_LENGTH or key != key.strip():
        # A short key can be guessed; stray whitespace is almost always a copy-paste accident.
        raise InputError(
            f"{where} must be at least {MIN_KEY_LENGTH} characters without surrounding spaces; "
            + _HOW_TO_MAKE_ONE
        )
    return key

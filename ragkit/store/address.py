"""Where a store lives, as plain data: a folder or a server URL.

An open `Store` holds a client and, for a folder, the folder's lock, so it cannot travel to another
process. A job that runs elsewhere (a Ray actor, a worker on another host) is given the address and
opens the store there itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ragkit.errors import InputError
from ragkit.store.store import Store


@dataclass(frozen=True)
class StoreAddress:
    """An embedded store folder (`path`) or a Qdrant server or cluster (`url`, with its `api_key`)."""

    path: Path | None = None
    url: str | None = None
    api_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.path is None) == (self.url is None):
            raise InputError("a store address needs exactly one of path (a folder) or url (a server)")

    @property
    def embedded(self) -> bool:
        """A folder, which one process at a time may open."""
        return self.path is not None

    def open(self) -> Store:
        if self.path is not None:
            return Store.open(path=self.path)
        return Store.open(url=self.url, api_key=self.api_key)

    def __str__(self) -> str:
        return str(self.path) if self.path is not None else str(self.url)

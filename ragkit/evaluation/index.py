"""Units -> vectors -> points of the evaluation collection, converging the way an ingestion job does.

Point ids come from (document, position, content), so a collection kept with `--store` is brought in
line by deleting the points that no unit has and embedding only the units it lacks: running the same
evaluation again embeds nothing, and a run that was interrupted resumes where it stopped.

Deleting what no unit has is only safe among eval's own points, so every point eval writes carries
`EVAL_MARK` in its payload, and a collection holding any point without it (ingested documents, named by
`--collection`) is refused before anything is written or deleted.

Payloads are ingestion's (`ragkit.store.section_payload`), with no page numbers or document hash: a
dataset string has no pages, and the ids make the hash unnecessary here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ragkit.encoder.batching import consecutive_groups
from ragkit.errors import InputError
from ragkit.evaluation.units import Unit
from ragkit.store import Point, Store, section_payload

if TYPE_CHECKING:
    from ragkit.encoder import Encoder

# Units embedded (and then written) together: enough for full batches, few enough that progress moves.
GROUP_TOKENS = {"cuda": 262_144, "cpu": 32_768}

EVAL_MARK = "ragkit_eval"
"""Payload key (value true) of every point eval writes: the only points it reuses or deletes."""


@dataclass(frozen=True)
class IndexStats:
    """What indexing did: units wanted, embedded now, found already stored, and stale points removed."""

    units: int
    embedded: int
    reused: int
    deleted: int
    tokens: int
    seconds: float


def index_units(
    store: Store, collection: str, encoder: Encoder, units: Sequence[Unit], *, source: str, progress: bool
) -> IndexStats:
    """Make `collection` hold exactly one point per unit, embedding only what is not stored yet."""
    store.ensure_collection(collection, dim=encoder.dim, model=encoder.name)
    wanted = {unit.point_id: unit for unit in units}
    present = _eval_points(store, collection)
    stale = sorted(present - wanted.keys())
    if stale:
        store.delete_points(collection, stale)
    # Longest first, so each group holds texts of similar length and batches carry little padding.
    todo = sorted((u for pid, u in wanted.items() if pid not in present), key=lambda u: -u.tokens)
    tokens, seconds = encoder.stats.tokens, encoder.stats.seconds
    with _bar(sum(u.tokens for u in todo), progress) as bar:
        budget = GROUP_TOKENS.get(encoder.device.type, GROUP_TOKENS["cuda"])
        for group in consecutive_groups(todo, lambda unit: unit.tokens, budget):
            vectors = encoder.encode([unit.embed_text for unit in group])
            points = [
                Point(
                    u.point_id,
                    v,
                    section_payload(
                        text=u.text,
                        doc_id=u.doc_id,
                        source=source,
                        title=u.title,
                        breadcrumb=u.breadcrumb,
                        section_index=u.position,
                        section_count=u.count,
                        tokens=u.tokens,
                        metadata={EVAL_MARK: True},
                    ),
                    text=u.embed_text,
                )
                for u, v in zip(group, vectors, strict=True)
            ]
            store.upsert(collection, points)
            bar.update(sum(unit.tokens for unit in group))
    return IndexStats(
        units=len(wanted),
        embedded=len(todo),
        reused=len(wanted) - len(todo),
        deleted=len(stale),
        tokens=encoder.stats.tokens - tokens,
        seconds=encoder.stats.seconds - seconds,
    )


def _eval_points(store: Store, collection: str) -> set[str]:
    """The ids of `collection`'s points, refusing it if any point is not eval's own.

    Converging deletes every point no unit has: right for a previous evaluation's points, and the loss
    of every document of a collection that `ragkit ingest` filled.
    """
    present: set[str] = set()
    foreign = 0
    for point_id, payload in store.scroll_payloads(collection, [EVAL_MARK]):
        if payload.get(EVAL_MARK) is True:
            present.add(point_id)
        else:
            foreign += 1
    if foreign:
        raise InputError(
            f"collection {collection!r} in {store.where} holds {foreign} points that ragkit eval did not "
            "write (ingested documents, or an evaluation by a ragkit that did not mark its points); eval "
            "replaces what a collection holds, so it leaves this one untouched: pass --collection a new "
            "name, or leave --collection out for a collection of eval's own"
        )
    return present


def _bar(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="tok", unit_scale=True, desc="embedding", disable=not enabled)

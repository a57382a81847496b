"""Units -> vectors -> points of the evaluation collection, converging the way an ingestion job does.

Point ids come from (document, position, content), so a collection kept with `--store` is brought in
line by deleting the points that no unit has and embedding only the units it lacks: running the same
evaluation again embeds nothing, and a run that was interrupted resumes where it stopped.

Payloads are ingestion's (`ragkit.store.section_payload`), with no page numbers or document hash: a
dataset string has no pages, and the ids make the hash unnecessary here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ragkit.encoder.batching import consecutive_groups
from ragkit.evaluation.units import Unit
from ragkit.store import Point, Store, section_payload

if TYPE_CHECKING:
    from ragkit.encoder import Encoder

# Units embedded (and then written) together: enough for full batches, few enough that progress moves.
GROUP_TOKENS = {"cuda": 262_144, "cpu": 32_768}


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
    present = {point_id for point_id, _ in store.scroll_payloads(collection, [])}
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


def _bar(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="tok", unit_scale=True, desc="embedding", disable=not enabled)

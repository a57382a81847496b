"""A store folder of an earlier ragkit (qdrant-client's local mode, schema 1) is recognised, and
`ragkit store convert DIR` turns it into the Qdrant Edge layout without re-embedding anything."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from ragkit.cli import main
from ragkit.errors import StoreError, StoreLockedError
from ragkit.store import Store, point_id, section_payload
from ragkit.store.convert import convert_legacy

SECTIONS = [
    (("Admin guide", "Keys"), "Rotate the API key every ninety days."),
    (("Admin guide", "Backups"), "Nightly snapshots are kept for a month."),
    (("Admin guide", "Backups", "Restore"), "Restoring a snapshot replaces the collection."),
]


def write_legacy_store(folder: Path) -> dict[str, tuple[np.ndarray, dict]]:
    """A folder exactly as ragkit schema 1 wrote it: qdrant-client local mode, one named cosine vector."""
    rng = np.random.default_rng(0)
    client = QdrantClient(path=str(folder))
    client.create_collection(
        "manuals",
        vectors_config={"dense": models.VectorParams(size=8, distance=models.Distance.COSINE)},
        metadata={"model": "sentence-transformers/all-MiniLM-L6-v2", "dim": 8, "ragkit_schema": 1},
    )
    written = {}
    for i, (breadcrumb, text) in enumerate(SECTIONS):
        payload = section_payload(
            text=text,
            doc_id="admin",
            source="/docs/admin.md",
            title="Admin guide",
            breadcrumb=breadcrumb,
            section_index=i,
            section_count=len(SECTIONS),
            tokens=12,
            doc_hash="h1",
        )
        vector = rng.normal(size=8).astype(np.float32)
        pid = point_id("admin", i, text)
        client.upsert(
            "manuals", [models.PointStruct(id=pid, vector={"dense": vector.tolist()}, payload=payload)]
        )
        written[pid] = (vector / np.linalg.norm(vector), payload)
    client.close()
    return written


def test_an_old_store_is_recognised_and_the_error_names_the_command(tmp_path: Path):
    write_legacy_store(tmp_path / "store")
    with pytest.raises(StoreError) as refused:
        Store.open(path=tmp_path / "store")
    assert f"ragkit store convert {tmp_path / 'store'}" in str(refused.value)


def test_convert_copies_every_point_with_its_vectors_and_payload(tmp_path: Path, capsys):
    folder = tmp_path / "store"
    written = write_legacy_store(folder)

    assert main(["store", "convert", str(folder)]) == 0
    assert "manuals: 3 points" in capsys.readouterr().out

    with Store.open(path=folder) as store:
        info = store.collection_info("manuals")
        assert (info.model, info.dim, info.points) == ("sentence-transformers/all-MiniLM-L6-v2", 8, 3)
        copied = {pid: (vectors, payload) for pid, payload, vectors in store.scroll_points("manuals")}
        assert copied.keys() == written.keys()
        for pid, (vectors, payload) in copied.items():
            assert payload == written[pid][1]
            np.testing.assert_allclose(vectors["dense"], written[pid][0], atol=1e-6)
        # The BM25 vectors were built from what was embedded, breadcrumb included.
        hits = store.search("manuals", None, mode="sparse", text="restore", top_k=3)
        assert [h.payload["breadcrumb"][-1] for h in hits] == ["Restore"]
        assert [h.payload["text"] for h in store.search("manuals", None, mode="sparse", text="backups")] == [
            SECTIONS[1][1],
            SECTIONS[2][1],
        ]
    backup = tmp_path / "store.qdrant-local-backup"
    assert (backup / "meta.json").is_file()
    assert main(["store", "convert", str(folder)]) == 2  # converted already
    assert "not a store folder of an earlier ragkit" in capsys.readouterr().err


def test_a_conversion_stopped_between_its_two_renames_is_finished_by_running_it_again(tmp_path: Path, capsys):
    folder = tmp_path / "store"
    write_legacy_store(folder)
    assert main(["store", "convert", str(folder)]) == 0
    # As if killed after moving the old folder away and before moving the new one in:
    folder.rename(tmp_path / "store.converting")
    assert main(["store", "convert", str(folder)]) == 0
    assert "manuals: 3 points" in capsys.readouterr().out
    with Store.open(path=folder) as store:
        assert store.count("manuals") == 3
    assert (tmp_path / "store.qdrant-local-backup" / "meta.json").is_file()
    assert not (tmp_path / "store.converting").exists()


def test_a_conversion_refused_because_another_is_running_leaves_that_ones_copy_alone(tmp_path: Path):
    folder = tmp_path / "store"
    write_legacy_store(folder)
    # Another conversion holds the old folder and is writing its copy beside it.
    running = QdrantClient(path=str(folder))
    copy = tmp_path / "store.converting"
    copy.mkdir()
    (copy / "being-written").write_text("points")
    try:
        with pytest.raises(StoreLockedError, match="in use by another process"):
            convert_legacy(folder, embedded_text=lambda payload: payload["text"])
        assert (copy / "being-written").is_file()
    finally:
        running.close()


def test_a_failed_conversion_leaves_the_old_folder_as_it_was_and_no_partial_copy(tmp_path: Path):
    folder = tmp_path / "store"
    write_legacy_store(folder)
    client = QdrantClient(path=str(folder))
    client.create_collection(
        "unrecorded",
        vectors_config={"dense": models.VectorParams(size=8, distance=models.Distance.COSINE)},
        metadata={"dim": 8, "ragkit_schema": 1},  # no recorded model
    )
    client.close()
    with pytest.raises(StoreError, match="'unrecorded' was not written by ragkit schema 1"):
        convert_legacy(folder, embedded_text=lambda payload: payload["text"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]
    with pytest.raises(StoreError, match="ragkit store convert"):
        Store.open(path=folder)


def test_convert_of_a_folder_that_does_not_exist_says_so_naming_it(tmp_path: Path, capsys):
    missing = tmp_path / "stroe"
    assert main(["store", "convert", str(missing)]) == 2  # the exit code of every input error
    err = capsys.readouterr().err
    assert f"{missing} does not exist" in err and "not a store folder" not in err
    assert sorted(tmp_path.iterdir()) == []


def test_convert_of_a_file_says_it_is_not_a_folder(tmp_path: Path, capsys):
    (tmp_path / "store").write_text("not a folder")
    assert main(["store", "convert", str(tmp_path / "store")]) == 2
    assert f"{tmp_path / 'store'} is a file, not a folder" in capsys.readouterr().err

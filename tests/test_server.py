"""`ragkit serve` through real HTTP on loopback: a real store, the real minilm model, uvicorn in a thread."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest

import ragkit
from ragkit.cli import main
from ragkit.commands.serve import check_exposure
from ragkit.errors import CollectionNotFoundError, InputError
from ragkit.server import KeyRing, ServerConfig, create_app
from ragkit.server.collections import Collections
from ragkit.server.engine import Engine
from ragkit.server.metrics import Metrics
from ragkit.store import CollectionOptions, Point, Store, point_id
from tests.serving import ADMIN_KEY, OTHER_KEY, SAMPLES, ingest_samples, running, serving_samples
from tests.tiny_gte import write_original_checkpoint

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
OTHER = {"Authorization": f"Bearer {OTHER_KEY}"}
MAX_UPLOAD = 64 * 1024
TOMATOES = "how often should tomatoes be watered"
TOMATO_NOTE = "Prune the suckers of tomato plants in summer"
CATS = """\
# Cat care

## Sleep

Cats sleep between twelve and sixteen hours a day, mostly in warm and sunny spots around the house.
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="module")
def base(root: Path) -> Iterator[str]:
    with serving_samples(root, max_upload_bytes=MAX_UPLOAD) as url:
        yield url


@pytest.fixture
def client(base: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base, timeout=60) as http:
        yield http


def search(client: httpx.Client, body: dict, headers: dict | None = ADMIN) -> httpx.Response:
    return client.post("/v1/search", json=body, headers=headers)


def upload(client: httpx.Client, name: str, content: bytes, **params: str) -> httpx.Response:
    return client.post("/v1/ingest", files={"file": (name, content)}, params=params, headers=ADMIN)


def finished_job(client: httpx.Client, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}", headers=ADMIN).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        assert time.monotonic() < deadline, f"job still {job['status']} after {timeout}s"
        time.sleep(0.2)


# --- service endpoints -------------------------------------------------------------------------------


def test_health_and_readiness_need_no_key(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "collection": "docs",
        "model": "sentence-transformers/all-MiniLM-L6-v2",
    }


def test_openapi_docs_describe_every_endpoint(client: httpx.Client) -> None:
    docs = client.get("/docs")
    assert "text/html" in docs.headers["content-type"]
    # The page works offline: its script and style come from this server, not a CDN.
    assert "/docs-assets/swagger-ui-bundle.js" in docs.text and "cdn." not in docs.text
    assert "SwaggerUIBundle" in client.get("/docs-assets/swagger-ui-bundle.js").text
    assert client.get("/redoc").status_code == 404  # FastAPI's ReDoc page would load its script from a CDN
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/healthz",
        "/readyz",
        "/v1/search",
        "/v1/query",
        "/v1/collections",
        "/v1/collections/{name}",
        "/v1/documents/{doc_id}",
        "/v1/ingest",
        "/v1/jobs/{job_id}",
        "/metrics",
    } <= set(paths)
    assert "multipart/form-data" in paths["/v1/ingest"]["post"]["requestBody"]["content"]


# --- authentication -----------------------------------------------------------------------------------


def test_a_request_without_a_key_is_401_with_a_bearer_challenge(client: httpx.Client) -> None:
    for response in (
        search(client, {"query": TOMATOES}, headers=None),
        client.get("/v1/collections"),
        client.post("/v1/query", json={"query": TOMATOES}),
        client.delete("/v1/documents/x"),
    ):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert "missing API key" in response.json()["detail"]


def test_an_unknown_key_is_401(client: httpx.Client) -> None:
    for key in ("wrong-key-0123456789abcdef", ADMIN_KEY[:-1], ADMIN_KEY + "x", "x"):
        response = search(client, {"query": TOMATOES}, headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 401, key


def test_a_key_is_403_outside_its_collections(client: httpx.Client) -> None:
    assert search(client, {"query": TOMATOES}, headers=OTHER).status_code == 403
    assert search(client, {"query": TOMATOES, "collection": "docs"}, headers=OTHER).status_code == 403
    response = client.post("/v1/ingest", files={"file": ("a.md", b"# A\n\ntext")}, headers=OTHER)
    assert response.status_code == 403
    assert "may not use collection 'docs'" in response.json()["detail"]
    # A collection it may use but that does not exist yet: found, not forbidden.
    assert search(client, {"query": TOMATOES, "collection": "other"}, headers=OTHER).status_code == 404
    assert client.get("/v1/collections", headers=OTHER).json() == {"collections": []}


# --- search and query ---------------------------------------------------------------------------------


def test_search_returns_the_matching_section_first(client: httpx.Client) -> None:
    response = search(client, {"query": TOMATOES, "top_k": 2})
    assert response.status_code == 200
    hits = response.json()["hits"]
    assert len(hits) == 2
    best = hits[0]
    assert set(best) == {"id", "score", "text", "metadata"}
    assert best["metadata"]["source"].endswith("gardening.txt")
    assert best["metadata"]["breadcrumb"] == ["Growing tomatoes"]
    assert "water them deeply twice a week" in best["text"]
    assert best["score"] > hits[1]["score"]


def test_filters_narrow_the_search(client: httpx.Client) -> None:
    source = search(client, {"query": "vector search"}).json()["hits"][0]["metadata"]["source"]
    assert source.endswith("qdrant-basics.md")
    narrowed = search(client, {"query": TOMATOES, "filters": {"source": source}}).json()["hits"]
    assert [hit["metadata"]["source"] for hit in narrowed] == [source]
    assert search(client, {"query": TOMATOES, "filters": {"source": "nowhere.pdf"}}).json() == {"hits": []}


def test_score_threshold_drops_weak_hits(client: httpx.Client) -> None:
    hits = search(client, {"query": TOMATOES, "score_threshold": 0.3, "mode": "dense"}).json()["hits"]
    assert [hit["metadata"]["breadcrumb"] for hit in hits] == [["Growing tomatoes"]]


def test_query_answers_with_numbered_sources(client: httpx.Client) -> None:
    response = client.post("/v1/query", json={"query": TOMATOES, "top_k": 2}, headers=ADMIN)
    assert response.status_code == 200
    body = response.json()
    assert "twice a week" in body["answer"]
    assert "[1]" in body["answer"]
    first = body["sources"][0]
    assert first["citation"] == 1
    assert first["source"].endswith("gardening.txt")
    assert first["breadcrumb"] == ["Growing tomatoes"]
    assert body["timings"]["total"] > 0


def test_collections_lists_model_and_points(client: httpx.Client) -> None:
    listed = client.get("/v1/collections", headers=ADMIN).json()["collections"]
    docs = next(c for c in listed if c["name"] == "docs")
    assert docs["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert docs["dim"] == 384
    assert docs["points"] >= 3


def test_an_unknown_collection_is_404(client: httpx.Client) -> None:
    for response in (
        search(client, {"query": TOMATOES, "collection": "nope"}),
        client.post("/v1/query", json={"query": TOMATOES, "collection": "nope"}, headers=ADMIN),
        client.delete("/v1/documents/x", params={"collection": "nope"}, headers=ADMIN),
    ):
        assert response.status_code == 404
        assert response.json() == {"detail": "collection 'nope' not found"}


# --- bad input: always 4xx with a message, never a 500 ------------------------------------------------


def test_bad_json_is_400(client: httpx.Client) -> None:
    response = client.post(
        "/v1/search", content=b'{"query": "x",', headers=ADMIN | {"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("the request body is not valid JSON")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"query": TOMATOES, "topk": 3}, "topk: Extra inputs are not permitted"),
        ({"query": TOMATOES, "top_k": 1000}, "top_k: Input should be less than or equal to 100"),
        ({"query": TOMATOES, "top_k": 0}, "top_k: Input should be greater than or equal to 1"),
        ({"query": TOMATOES, "top_k": "5"}, "top_k: Input should be a valid integer"),
        ({"query": "   "}, "query: Value error, the query is blank"),
        ({"query": "x" * 4097}, "query: String should have at most 4096 characters"),
        ({"top_k": 3}, "query: Field required"),
        ({"query": TOMATOES, "collection": "../etc"}, "collection: String should match pattern"),
        ([TOMATOES], "Input should be a valid dictionary"),
    ],
)
def test_invalid_fields_are_422_naming_the_field(client: httpx.Client, body: object, message: str) -> None:
    response = client.post("/v1/search", json=body, headers=ADMIN)
    assert response.status_code == 422
    assert message in response.json()["detail"]


def test_a_bad_filter_is_400_naming_the_key(client: httpx.Client) -> None:
    response = search(client, {"query": TOMATOES, "filters": {"page_start": {"between": [1, 2]}}})
    assert response.status_code == 400
    assert "filter 'page_start': unknown range operator" in response.json()["detail"]


def test_an_oversized_json_body_is_413(client: httpx.Client) -> None:
    huge = {"query": TOMATOES, "filters": {"doc_id": ["x" * 100] * 1000}}
    assert search(client, huge).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while the body streams
        yield b'{"query": "x", "filters": {"doc_id": ['
        for _ in range(2000):
            yield b'"' + b"x" * 100 + b'",'
        yield b'"x"]}}'

    response = client.post("/v1/search", content=chunks(), headers=ADMIN)
    assert response.status_code == 413
    assert "request body too large" in response.json()["detail"]


# --- ingestion jobs -----------------------------------------------------------------------------------


def test_an_upload_is_ingested_by_a_background_job(client: httpx.Client) -> None:
    response = upload(client, "cats.md", CATS.encode())
    assert response.status_code == 202
    accepted = response.json()
    assert response.headers["location"] == f"/v1/jobs/{accepted['id']}"
    assert accepted["status"] in ("queued", "running")
    assert accepted["filename"] == "cats.md"

    job = finished_job(client, accepted["id"])
    assert job["status"] == "succeeded", job
    report = job["report"]
    assert (report["documents_ingested"], report["sections_embedded"], report["ok"]) == (1, 1, True)
    assert report["tokens_embedded"] > 0

    hit = search(client, {"query": "how long do cats sleep"}).json()["hits"][0]
    assert hit["metadata"]["filename"] == "cats.md"
    assert hit["metadata"]["doc_id"] == accepted["doc_id"]

    # The same name again is the same document: unchanged content is not embedded again.
    again = finished_job(client, upload(client, "cats.md", CATS.encode()).json()["id"])
    assert (again["doc_id"], again["report"]["documents_unchanged"]) == (accepted["doc_id"], 1)

    deleted = client.delete(f"/v1/documents/{accepted['doc_id']}", headers=ADMIN)
    assert deleted.json() == {"collection": "docs", "doc_id": accepted["doc_id"], "deleted": 1}
    remaining = search(client, {"query": "how long do cats sleep", "top_k": 10}).json()["hits"]
    assert all(hit["metadata"].get("filename") != "cats.md" for hit in remaining)
    gone = client.delete(f"/v1/documents/{accepted['doc_id']}", headers=ADMIN)
    assert gone.status_code == 404


def test_searches_of_every_mode_are_answered_while_a_long_upload_is_ingested(tmp_path: Path) -> None:
    topics = (
        f"## Topic {i}\n\n"
        + " ".join(f"Note {j} on bed {i}: water the seedlings at dawn." for j in range(40))
        for i in range(120)
    )
    log = ("# Garden log\n\n" + "\n\n".join(topics)).encode()  # ~250 kB: ~10 s of embedding on 2 cores
    with (
        serving_samples(tmp_path, max_upload_bytes=len(log) + 1) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        accepted = upload(client, "long-garden-log.md", log).json()
        deadline = time.monotonic() + 60
        while client.get(f"/v1/jobs/{accepted['id']}", headers=ADMIN).json()["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        latencies = []
        for mode in ("hybrid", "dense", "sparse") * 2:
            started = time.monotonic()
            response = search(client, {"query": "how do I prune tomatoes", "mode": mode})
            latencies.append(time.monotonic() - started)
            assert response.status_code == 200, response.text
            assert response.json()["hits"][0]["metadata"]["breadcrumb"] == ["Growing tomatoes"]
        status = client.get(f"/v1/jobs/{accepted['id']}", headers=ADMIN).json()["status"]
        print(f"\nsearch latency during ingestion: max {max(latencies) * 1000:.0f} ms ({status} job)")
        # The job was still embedding and writing: searches waited neither for it nor for an index build.
        assert status == "running"
        assert max(latencies) < 1.0
        job = finished_job(client, accepted["id"], timeout=600)
        assert job["status"] == "succeeded" and job["report"]["index_seconds"] == 0


def test_an_admin_builds_the_index_on_request_and_search_goes_on(client: httpx.Client) -> None:
    before = {
        c["name"]: c["points"] for c in client.get("/v1/collections", headers=ADMIN).json()["collections"]
    }
    built = client.post("/v1/index", headers=ADMIN)
    assert built.status_code == 200, built.text
    assert built.json()["collection"] in before and built.json()["seconds"] >= 0
    after = {
        c["name"]: c["points"] for c in client.get("/v1/collections", headers=ADMIN).json()["collections"]
    }
    assert after == before
    assert search(client, {"query": TOMATOES}).json()["hits"][0]["metadata"]["breadcrumb"] == [
        "Growing tomatoes"
    ]
    # It takes a copy of the store on disk, so a key limited to some collections may not ask for it.
    refused = client.post("/v1/index", params={"collection": "other"}, headers=OTHER)
    assert refused.status_code == 403 and "every collection" in refused.json()["detail"]
    assert client.post("/v1/index", params={"collection": "nope"}, headers=ADMIN).status_code == 404


def test_a_delete_that_waits_for_an_index_build_holds_up_no_search(tmp_path: Path) -> None:
    # Writes wait for a build; searches, which the engine thread answers, must not wait with them.
    ingest_samples(tmp_path / "store", "docs")
    vectors = np.random.default_rng(9).normal(size=(12_000, 384)).astype(np.float32)  # seconds to index
    with Store.open(path=tmp_path / "store") as store:
        store.ensure_collection("bulk", dim=384, model=store.collection_info("docs").model)
        notes = [{"text": f"note {i}", "doc_id": f"b{i % 50}"} for i in range(len(vectors))]
        store.upsert("bulk", [Point(point_id("bulk", i, ""), v, notes[i]) for i, v in enumerate(vectors)])
    answers: dict[str, httpx.Response] = {}

    def call(what: str, method: str, path: str) -> None:
        with httpx.Client(base_url=url, timeout=120) as own:
            answers[what] = own.request(method, path, params={"collection": "bulk"}, headers=ADMIN)

    with serving_samples(tmp_path, restart=True) as url, httpx.Client(base_url=url, timeout=60) as client:
        build = threading.Thread(target=call, args=("build", "POST", "/v1/index"))
        build.start()
        deadline = time.monotonic() + 60
        while not any("ragkit.store.rebuild" in " ".join(c.cmdline()) for c in psutil.Process().children()):
            assert time.monotonic() < deadline and build.is_alive(), "the build's child did not start"
            time.sleep(0.01)
        delete = threading.Thread(target=call, args=("delete", "DELETE", "/v1/documents/b0"))
        delete.start()
        latencies = []
        while build.is_alive():
            started = time.monotonic()
            assert search(client, {"query": TOMATOES}).status_code == 200
            latencies.append(time.monotonic() - started)
        build.join()
        delete.join()
    print(
        f"\n{len(latencies)} searches during the build and a delete, slowest {max(latencies) * 1000:.0f} ms"
    )
    assert len(latencies) > 3 and max(latencies) < 1.0
    assert answers["build"].status_code == 200 and answers["delete"].json()["deleted"] == 240


def test_uploads_build_the_index_once_enough_sections_have_arrived(tmp_path: Path) -> None:
    with (
        serving_samples(tmp_path, index_after=3) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        unindexed, builds = 0, []
        for animal in ("cats", "dogs", "owls", "bats", "toads"):
            text = f"# {animal.title()}\n\n## Sleep\n\n{animal.title()} sleep in the shed during the day.\n"
            job = finished_job(client, upload(client, f"{animal}.md", text.encode()).json()["id"])
            assert job["status"] == "succeeded"
            unindexed += job["report"]["sections_embedded"]
            builds.append(job["report"]["index_seconds"] > 0)
            assert builds[-1] == (unindexed >= 3), (animal, unindexed)
            unindexed = 0 if builds[-1] else unindexed
        assert any(builds) and not all(builds)
        assert search(client, {"query": "owls sleep"}).json()["hits"][0]["metadata"]["filename"] == "owls.md"
        # A build on request counts too: the sections uploaded before it are indexed, the count starts again.
        assert unindexed == 2 and client.post("/v1/index", headers=ADMIN).status_code == 200
        text = "# Newts\n\n## Sleep\n\nNewts sleep under the stones.\n"
        job = finished_job(client, upload(client, "newts.md", text.encode()).json()["id"])
        assert job["report"]["sections_embedded"] == 1 and job["report"]["index_seconds"] == 0


def test_the_count_towards_the_next_build_outlives_a_restart_of_the_service(tmp_path: Path) -> None:
    def sections_and_build(url: str, animal: str) -> tuple[int, bool]:
        text = f"# {animal.title()}\n\n## Sleep\n\n{animal.title()} sleep in the shed during the day.\n"
        with httpx.Client(base_url=url, timeout=60) as client:
            report = finished_job(client, upload(client, f"{animal}.md", text.encode()).json()["id"])[
                "report"
            ]
        return report["sections_embedded"], report["index_seconds"] > 0

    with serving_samples(tmp_path, index_after=3) as url:
        assert [sections_and_build(url, animal) for animal in ("cats", "dogs")] == [(1, False), (1, False)]
    with serving_samples(tmp_path, restart=True, index_after=3) as url:
        assert sections_and_build(url, "owls") == (1, True)  # the third section since the last build
        assert sections_and_build(url, "bats") == (1, False)


def test_an_upload_to_a_new_collection_creates_it(client: httpx.Client) -> None:
    job = finished_job(client, upload(client, "cats.md", CATS.encode(), collection="pets").json()["id"])
    assert job["status"] == "succeeded"
    hits = search(client, {"query": "cat sleep", "collection": "pets"}).json()["hits"]
    assert [hit["metadata"]["filename"] for hit in hits] == ["cats.md"]


def test_a_collection_that_an_upload_failed_to_create_is_404_and_the_service_serves_on(
    tmp_path: Path,
) -> None:
    # The server's settings for new collections are ones an embedded store refuses, so the upload fails
    # before its collection exists: searching that collection must not break the service.
    with (
        serving_samples(tmp_path, collection_options=CollectionOptions(shards=2)) as url,
        httpx.Client(base_url=url, timeout=20) as client,
    ):
        job = finished_job(client, upload(client, "cats.md", CATS.encode(), collection="pets").json()["id"])
        assert job["status"] == "failed" and "shards" in job["error"]
        missing = {"detail": "collection 'pets' not found"}  # as for any collection, naming no others
        for mode in ("hybrid", "sparse"):
            response = search(client, {"query": "cat sleep", "collection": "pets", "mode": mode})
            assert (response.status_code, response.json()) == (404, missing)
        response = client.post("/v1/query", json={"query": "cat sleep", "collection": "pets"}, headers=ADMIN)
        assert (response.status_code, response.json()) == (404, missing)
        assert search(client, {"query": TOMATOES}).status_code == 200
        assert client.get("/readyz").status_code == 200


def test_path_like_upload_names_never_become_paths(client: httpx.Client, root: Path) -> None:
    names = {
        "../../escape.md": "escape.md",
        "..\\..\\windows.md": "windows.md",
        "/etc/.hidden.md": "hidden.md",
    }
    for sent, kept in names.items():
        job = finished_job(client, upload(client, sent, CATS.encode(), collection="names").json()["id"])
        assert (job["status"], job["filename"]) == ("succeeded", kept)
    everywhere = {path.name for path in root.parent.rglob("*")}
    assert not everywhere & {"escape.md", "windows.md", "hidden.md", ".hidden.md"}
    assert not list((root / "work").rglob("*.*"))  # staged and ingested files are all gone


def test_a_corrupt_upload_fails_its_job_with_the_reason(client: httpx.Client) -> None:
    job = finished_job(client, upload(client, "broken.pdf", b"%PDF-1.7\n\x00garbage, not a pdf").json()["id"])
    assert job["status"] == "failed"
    [failure] = job["report"]["documents_failed"]
    assert failure["path"] == "broken.pdf"  # the client's name, not the server's path
    assert failure["error"]


@pytest.mark.parametrize(
    ("files", "status", "message"),
    [
        ({"file": ("tool.exe", b"MZ")}, 415, "unsupported file type '.exe'"),
        ({"file": ("README", b"text")}, 415, "unsupported file type '(no suffix)'"),
        ({"file": ("empty.md", b"")}, 400, "'empty.md' is empty"),
        ({"document": ("a.md", b"# A")}, 400, "unexpected form field 'document'"),
        ([("file", ("a.md", b"# A")), ("file", ("b.md", b"# B"))], 400, "one file per request"),
    ],
)
def test_unacceptable_uploads_are_refused(
    client: httpx.Client, files: object, status: int, message: str
) -> None:
    response = client.post("/v1/ingest", files=files, headers=ADMIN)
    assert response.status_code == status
    assert message in response.json()["detail"]


def test_a_non_multipart_upload_is_415(client: httpx.Client) -> None:
    response = client.post("/v1/ingest", content=b"# A", headers=ADMIN | {"Content-Type": "text/markdown"})
    assert response.status_code == 415


def test_an_oversized_upload_is_413_and_leaves_nothing_behind(client: httpx.Client, root: Path) -> None:
    response = upload(client, "big.md", b"# Big\n\n" + b"word " * MAX_UPLOAD)
    assert response.status_code == 413
    assert not list((root / "work" / "incoming").iterdir())


def test_a_job_outside_the_keys_collections_is_404_like_an_unknown_one(client: httpx.Client) -> None:
    unknown = client.get("/v1/jobs/0123abcd", headers=ADMIN)
    assert unknown.status_code == 404
    job_id = upload(client, "cats.md", CATS.encode()).json()["id"]  # into "docs", which OTHER may not use
    foreign = client.get(f"/v1/jobs/{job_id}", headers=OTHER)
    assert foreign.status_code == 404
    assert foreign.json() == {"detail": unknown.json()["detail"].replace("0123abcd", job_id)}
    assert client.get(f"/v1/jobs/{job_id}", headers=ADMIN).status_code == 200
    finished_job(client, job_id)


# --- concurrency --------------------------------------------------------------------------------------


def test_a_burst_of_concurrent_searches_is_answered_correctly(
    client: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = {
        TOMATOES: "gardening.txt",
        "cosine similarity and payload filters": "qdrant-basics.md",
        "rotary position embeddings for long context": "long-context.html",
    }
    queries = list(expected) * 32  # 96 requests in flight at once
    batches_before = _metric(client, "ragkit_search_batch_size_count")
    sent = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("burst.py")), str(client.base_url)],
        input=json.dumps({"key": ADMIN_KEY, "queries": queries}),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    results = json.loads(sent.stdout)
    for query, (status, _, top) in zip(queries, results, strict=True):
        assert status == 200, top
        assert top.endswith(expected[query]), (query, top)  # each answer belongs to its own query
    # Micro-batching: far fewer encoder calls than requests.
    encoder_calls = _metric(client, "ragkit_search_batch_size_count") - batches_before
    assert encoder_calls < len(queries) / 2
    latencies = sorted(seconds for _, seconds, _ in results)
    p50 = statistics.median(latencies)
    p95 = latencies[math.ceil(0.95 * len(latencies)) - 1]
    with capsys.disabled():
        print(
            f"\n/v1/search, {len(queries)} concurrent requests in {encoder_calls:.0f} encoder calls: "
            f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"
        )


@contextmanager
def engine_over_memory(*names: str) -> Iterator[tuple[Engine, Collections]]:
    """An engine, not started, over collections of one tomato note each in qdrant-client's in-memory
    engine (a server's request path), searched in sparse mode: no model is loaded."""
    collections = Collections.open("docs", store=None, url=":memory:", api_key=None, model=None, device="cpu")
    for name in names:
        collections.store.ensure_collection(name, dim=4, model="someone/uncached-model")
        point = Point(point_id(name, 0, TOMATO_NOTE), [1.0, 0, 0, 0], {"text": TOMATO_NOTE, "doc_id": "d"})
        collections.store.upsert(name, [point])
    engine = Engine(collections, Metrics())
    try:
        yield engine, collections
    finally:
        engine.stop()
        collections.close()


def test_a_collection_deleted_meanwhile_fails_only_its_own_searches_in_a_batch() -> None:
    with engine_over_memory("archive", "docs") as (engine, collections):
        collections.get("archive")  # the service holds its Kit, as after a listing or a delete
        collections.store._engine._client.delete_collection("archive")  # as another client would
        # Queued before the engine starts, so that one batch holds both; "archive" is searched first.
        archive, docs = (engine.search(name, "tomato suckers", mode="sparse") for name in ("archive", "docs"))
        engine.start()
        with pytest.raises(CollectionNotFoundError, match="'archive' not found"):
            archive.result(timeout=30)
        assert [hit.text for hit in docs.result(timeout=30)] == [TOMATO_NOTE]


def test_a_failure_in_the_engine_itself_answers_its_batch_and_the_engine_serves_on() -> None:
    with engine_over_memory("docs") as (engine, _):
        # A caller's bug: a search naming no collection, which the engine cannot sort into its batch.
        batch = [engine.search(name, "tomato suckers", mode="sparse") for name in (None, "docs")]
        engine.start()
        for future in batch:
            with pytest.raises(TypeError):
                future.result(timeout=30)
        later = engine.search("docs", "tomato suckers", mode="sparse")
        assert [hit.text for hit in later.result(timeout=30)] == [TOMATO_NOTE]


def test_metrics_count_requests_latency_tokens_and_queue(client: httpx.Client) -> None:
    search(client, {"query": TOMATOES})
    text = client.get("/metrics").text
    assert 'ragkit_http_requests_total{method="POST",route="/v1/search",status="200"}' in text
    assert 'ragkit_http_request_duration_seconds_bucket{le="0.1",method="POST",route="/v1/search"}' in text
    assert _metric(client, "ragkit_embedding_tokens_total") > 0
    assert "ragkit_engine_queue_depth 0.0" in text
    # Routes, not raw paths, so ids cannot blow up the number of series.
    client.delete("/v1/documents/some-id", headers=ADMIN)
    assert 'route="/v1/documents/{doc_id}"' in client.get("/metrics").text


def test_a_sparse_search_embeds_nothing_and_a_dense_one_does(client: httpx.Client) -> None:
    before = _metric(client, "ragkit_embedding_tokens_total")
    hits = search(client, {"query": "tomatoes", "mode": "sparse"}).json()["hits"]
    assert hits and _metric(client, "ragkit_embedding_tokens_total") == before
    search(client, {"query": "tomatoes", "mode": "dense"})
    assert _metric(client, "ragkit_embedding_tokens_total") > before


def test_a_query_over_the_models_limit_is_counted_as_truncated(client: httpx.Client) -> None:
    """The service's MiniLM reads 256 tokens: a longer query is embedded from its start, and /metrics says
    how many queries and tokens that left out."""
    before = _metric(client, "ragkit_truncated_texts_total"), _metric(client, "ragkit_truncated_tokens_total")
    assert search(client, {"query": TOMATOES, "mode": "dense"}).status_code == 200
    assert _metric(client, "ragkit_truncated_texts_total") == before[0]
    long_query = " ".join([TOMATOES] * 60)
    assert search(client, {"query": long_query, "mode": "dense"}).status_code == 200
    assert _metric(client, "ragkit_truncated_texts_total") == before[0] + 1
    assert _metric(client, "ragkit_truncated_tokens_total") > before[1]


def _metric(client: httpx.Client, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"metric {name} not exported")


# --- the command line ---------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_binds_need_no_key(host: str) -> None:
    check_exposure(host, keys_enabled=False, insecure=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "my-host.example"])
def test_other_binds_need_a_key_or_insecure(host: str) -> None:
    with pytest.raises(InputError, match="without API keys"):
        check_exposure(host, keys_enabled=False, insecure=False)
    check_exposure(host, keys_enabled=True, insecure=False)
    check_exposure(host, keys_enabled=False, insecure=True)


def test_serve_refuses_a_public_bind_without_keys_before_opening_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RAGKIT_API_KEY", raising=False)
    monkeypatch.delenv("RAGKIT_API_KEYS_FILE", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--store", str(tmp_path / "store")]) == 2
    assert "refusing to serve on 0.0.0.0 without API keys" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()


def test_serve_builds_the_app_from_its_flags_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(app=app, **options))
    monkeypatch.setenv("RAGKIT_API_KEY", ADMIN_KEY)
    monkeypatch.setenv("RAGKIT_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("RAGKIT_MAX_UPLOAD_MB", "0")
    argv = [
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "9999",
        "--store",
        str(tmp_path / "store"),
        "--model",
        "minilm",
    ]
    assert main(argv) == 2  # an upload limit of 0 is refused, not taken as "no limit"
    monkeypatch.setenv("RAGKIT_MAX_UPLOAD_MB", "3")
    assert main(argv) == 0
    assert (served["host"], served["port"]) == ("0.0.0.0", 9999)  # allowed: a key is configured
    assert {route.path for route in served["app"].routes} >= {"/v1/search", "/v1/ingest"}
    assert (tmp_path / "work" / "incoming").is_dir()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"short": "*"}', "at least 16 characters"),
        ('{"a-long-enough-key-123": []}', "non-empty list of collection names"),
        ('["a-long-enough-key-123"]', "must be a JSON object"),
        ("{not json", "not valid JSON"),
    ],
)
def test_a_bad_keys_file_is_refused(tmp_path: Path, content: str, message: str) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        KeyRing.load(keys_file=keys)


def test_keys_grant_their_collections_only() -> None:
    ring = KeyRing.load(api_key="k" * 16)
    assert ring.lookup("k" * 16).allows("anything")
    assert ring.lookup("k" * 15) is None
    assert not KeyRing.load().enabled
    with pytest.raises(InputError, match="at least 16"):
        KeyRing.load(api_key=" " + "k" * 16)


def test_every_serve_setting_is_documented_in_the_environment_help() -> None:
    from ragkit.config import ENVIRONMENT_VARIABLES

    assert {"RAGKIT_API_KEY", "RAGKIT_API_KEYS_FILE", "RAGKIT_WORK_DIR", "RAGKIT_MAX_UPLOAD_MB"} <= set(
        ENVIRONMENT_VARIABLES
    )
    assert json.dumps(ENVIRONMENT_VARIABLES)  # plain strings, printable in --help


def test_the_services_model_is_that_of_the_collections_it_creates(
    tmp_path: Path, tiny_gte_dir: Path, minilm_path: Path
) -> None:
    # Collections of two other models (minilm, another tiny gte), served with tiny_gte_dir as the model.
    ingest_samples(tmp_path / "store", "docs")
    other = write_original_checkpoint(tmp_path / "other-gte", minilm_path, seed=1)
    with ragkit.open("notes", store=tmp_path / "store", model=str(other), device="cpu") as kit:
        assert kit.ingest([SAMPLES], workers=0).ok
    config = ServerConfig(
        collection="docs",
        store=str(tmp_path / "store"),
        model=str(tiny_gte_dir),
        device="cpu",
        keys=KeyRing.load(api_key=ADMIN_KEY),
        work_dir=tmp_path / "work",
    )
    with (
        running(create_app(config), ready_timeout=60) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        minilm = "sentence-transformers/all-MiniLM-L6-v2"
        assert client.get("/readyz").json()["model"] == minilm  # the default collection's recorded model
        for name in ("docs", "notes"):
            response = search(client, {"query": TOMATOES, "collection": name})
            assert response.status_code == 200 and response.json()["hits"], response.text
        job = finished_job(client, upload(client, "cats.md", CATS.encode(), collection="pets").json()["id"])
        assert job["status"] == "succeeded", job
        listed = {
            c["name"]: c["model"] for c in client.get("/v1/collections", headers=ADMIN).json()["collections"]
        }
        assert listed == {"docs": minilm, "notes": str(other.resolve()), "pets": str(tiny_gte_dir.resolve())}
        assert search(client, {"query": "cat sleep", "collection": "pets"}).status_code == 200


def test_a_deleted_collection_is_created_again_by_the_next_upload_with_the_services_model(
    tmp_path: Path, minilm_path: Path
) -> None:
    # "notes" is built with another model than the service's (minilm): deleting it is how it gets that one.
    other = write_original_checkpoint(tmp_path / "other-gte", minilm_path, seed=1)
    ingest_samples(tmp_path / "store", "docs")
    with ragkit.open("notes", store=tmp_path / "store", model=str(other), device="cpu") as kit:
        assert kit.ingest([SAMPLES], workers=0).ok
        sections = kit.info().points
    with serving_samples(tmp_path, restart=True) as url, httpx.Client(base_url=url, timeout=60) as client:
        assert (
            search(client, {"query": TOMATOES, "collection": "notes"}).status_code == 200
        )  # its Kit is held
        assert client.delete("/v1/collections/notes", headers=OTHER).status_code == 403
        deleted = client.delete("/v1/collections/notes", headers=ADMIN)
        assert deleted.status_code == 200 and deleted.json() == {"collection": "notes", "points": sections}
        assert search(client, {"query": TOMATOES, "collection": "notes"}).status_code == 404
        assert client.delete("/v1/collections/notes", headers=ADMIN).status_code == 404
        # An upload queued before a delete is ingested first, then deleted with the collection.
        queued = upload(client, "cats.md", CATS.encode(), collection="pets").json()["id"]
        assert client.delete("/v1/collections/pets", headers=ADMIN).json() == {
            "collection": "pets",
            "points": 1,
        }
        assert finished_job(client, queued)["status"] == "succeeded"
        job = finished_job(client, upload(client, "cats.md", CATS.encode(), collection="notes").json()["id"])
        assert job["status"] == "succeeded", job
        listed = {
            c["name"]: (c["model"], c["points"])
            for c in client.get("/v1/collections", headers=ADMIN).json()["collections"]
        }
        minilm = "sentence-transformers/all-MiniLM-L6-v2"
        assert listed == {"docs": (minilm, listed["docs"][1]), "notes": (minilm, 1)}
        hits = search(client, {"query": "cat sleep", "collection": "notes"}).json()["hits"]
        assert hits[0]["metadata"]["filename"] == "cats.md"


def test_collections_with_the_same_model_share_one_loaded_encoder(tmp_path: Path) -> None:
    ingest_samples(tmp_path / "store", "first")
    ingest_samples(tmp_path / "store", "second")
    collections = Collections.open(
        "first", store=str(tmp_path / "store"), url=None, api_key=None, model=None, device="cpu"
    )
    try:
        loaded = collections.default.encoder
        assert collections.get("second").encoder is loaded
    finally:
        collections.close()


def test_a_collection_an_upload_creates_shares_the_loaded_copy_of_the_services_model(tmp_path: Path) -> None:
    """Named by its alias, as the service's --model usually is: the copy the default collection loaded
    serves the new collection too, instead of a second copy in memory."""
    ingest_samples(tmp_path / "store", "docs")
    collections = Collections.open(
        "docs", store=str(tmp_path / "store"), url=None, api_key=None, model="minilm", device="cpu"
    )
    try:
        loaded = collections.default.encoder
        assert collections.get("pets", create=True).encoder is loaded
    finally:
        collections.close()

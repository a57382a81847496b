"""Bad requests to every endpoint of `ragkit serve`: each is answered 4xx with a message, never 5xx.

Malformed JSON, wrong types, oversized bodies, path tricks in upload names and unknown collections,
sent through real HTTP to the real service (tests/serving.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serving import ADMIN_KEY, serving_samples

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
JSON = ADMIN | {"Content-Type": "application/json"}
MAX_UPLOAD = 64 * 1024
NOTE = b"# Note\n\nCats sleep for most of the day in warm places.\n"
# Every route of the service, as README's "Serve" table lists them.
ENDPOINTS = [
    ("GET", "/"),
    ("POST", "/v1/search"),
    ("POST", "/v1/query"),
    ("GET", "/v1/collections"),
    ("DELETE", "/v1/documents/some-doc"),
    ("POST", "/v1/ingest"),
    ("GET", "/v1/jobs/0123abcd"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/docs"),
    ("GET", "/openapi.json"),
]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bad-requests")


@pytest.fixture(scope="module")
def client(root: Path) -> Iterator[httpx.Client]:
    with (
        serving_samples(root, max_upload_bytes=MAX_UPLOAD) as url,
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        yield http


def refused(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    detail = response.json()["detail"]
    assert isinstance(detail, str) and message in detail, detail


def finished_job(client: httpx.Client, job_id: str) -> dict:
    deadline = time.monotonic() + 120
    while (job := client.get(f"/v1/jobs/{job_id}", headers=ADMIN).json())["status"] not in (
        "succeeded",
        "failed",
    ):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    return job


def upload(client: httpx.Client, name: str, content: bytes = NOTE, **params: str) -> httpx.Response:
    return client.post("/v1/ingest", files={"file": (name, content)}, params=params, headers=ADMIN)


def multipart(client: httpx.Client, body: bytes, boundary: str = "b") -> httpx.Response:
    headers = ADMIN | {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    return client.post("/v1/ingest", content=body, headers=headers)


# --- every endpoint -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_an_oversized_body_is_413_on_every_endpoint(client: httpx.Client, method: str, path: str) -> None:
    limit = MAX_UPLOAD if path == "/v1/ingest" else 64 * 1024
    response = client.request(method, path, content=b"x" * (limit + 32 * 1024), headers=JSON)
    refused(response, 413, "request body too large")


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_a_wrong_method_is_405_on_every_endpoint(client: httpx.Client, method: str, path: str) -> None:
    wrong = "PUT" if method != "PUT" else "PATCH"
    refused(client.request(wrong, path, headers=ADMIN), 405, "Method Not Allowed")


# --- malformed JSON -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/search", "/v1/query"])
@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b'{"query": "x",', 400, "the request body is not valid JSON"),
        (b"\xff\xfe{", 400, "not UTF-8 text"),
        (b"[" * 5000 + b"]" * 5000, 400, "nested too deeply"),
        (b'{"query": "x", "top_k": 5} trailing', 400, "the request body is not valid JSON"),
        (b"", 422, "body: Field required"),
        (b"null", 422, "Input should be a valid dictionary"),
        (b'"a string"', 422, "Input should be a valid dictionary"),
        (b'{"query": "\\ud800"}', 422, "query: Input should be a valid string"),
        (b'{"query": "x", "score_threshold": NaN}', 422, "score_threshold"),
        (b'{"query": "x", "score_threshold": Infinity}', 422, "score_threshold"),
    ],
)
def test_malformed_json_is_refused_with_the_reason(
    client: httpx.Client, path: str, body: bytes, status: int, message: str
) -> None:
    refused(client.post(path, content=body, headers=JSON), status, message)


@pytest.mark.parametrize("path", ["/v1/search", "/v1/query"])
def test_a_body_that_is_not_json_is_422(client: httpx.Client, path: str) -> None:
    response = client.post(path, content=b'{"query": "x"}', headers=ADMIN | {"Content-Type": "text/plain"})
    refused(response, 422, "Input should be a valid dictionary")


# --- wrong types --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/search", "/v1/query"])
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"query": 42}, "query: Input should be a valid string"),
        ({"query": ["x"]}, "query: Input should be a valid string"),
        ({"query": "x", "top_k": 5.0}, "top_k: Input should be a valid integer"),
        ({"query": "x", "top_k": True}, "top_k: Input should be a valid integer"),
        ({"query": "x", "top_k": 10**30}, "top_k: Input should be less than or equal to 100"),
        ({"query": "x", "filters": "source"}, "filters: Input should be a valid dictionary"),
        ({"query": "x", "filters": ["source"]}, "filters: Input should be a valid dictionary"),
        ({"query": "x", "score_threshold": "high"}, "score_threshold: Input should be a valid number"),
        ({"query": "x", "collection": 7}, "collection: Input should be a valid string"),
        ({"query": "x", "collection": ".."}, "collection: String should match pattern"),
        ({"query": "x", "collection": "."}, "collection: String should match pattern"),
        ({"query": "x", "collection": "a/b"}, "collection: String should match pattern"),
        ({"query": "x", "collection": "c" * 256}, "collection: String should match pattern"),
    ],
)
def test_wrong_types_are_422_naming_the_field(
    client: httpx.Client, path: str, body: dict, message: str
) -> None:
    refused(client.post(path, json=body, headers=ADMIN), 422, message)


@pytest.mark.parametrize(
    "context_tokens", ["many", 3000.5, None, 10**9, 0], ids=["str", "float", "null", "huge", "zero"]
)
def test_query_context_tokens_must_be_a_sane_integer(client: httpx.Client, context_tokens: object) -> None:
    response = client.post("/v1/query", json={"query": "x", "context_tokens": context_tokens}, headers=ADMIN)
    refused(response, 422, "context_tokens: ")


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"source": {"gte": "x"}}, "range bound gte='x' must be a number"),
        ({"page_start": {"gte": True}}, "range bound gte=True must be a number"),
        ({"source": [[1]]}, "an any-of list must be non-empty"),
        ({"source": []}, "an any-of list must be non-empty"),
        ({"source": None}, "unsupported value None"),
        ({"source": 1.5}, "unsupported value 1.5"),
        ({"": "x"}, "filter key '' must be a non-empty string"),
        ({"page_start": {"between": [1, 2]}}, "unknown range operator"),
        ({"page_start": 2**63}, "filter 'page_start': the integer 9223372036854775808 is outside the 64-bit"),
        ({"page_start": -(2**63) - 1}, "filter 'page_start': the integer -9223372036854775809 is outside"),
        ({"page_start": [1, 2**64]}, "filter 'page_start': the integer 18446744073709551616 is outside"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/search", "/v1/query"])
def test_bad_filters_are_400_naming_the_key(
    client: httpx.Client, path: str, filters: dict, message: str
) -> None:
    refused(client.post(path, json={"query": "x", "filters": filters}, headers=ADMIN), 400, message)


@pytest.mark.parametrize(
    ("bound", "message"),
    [
        (b"NaN", "range bound gte=nan must be a finite number"),
        (b"Infinity", "range bound gte=inf must be a finite number"),
        (b"-Infinity", "range bound gte=-inf must be a finite number"),
        (b"1e400", "range bound gte=inf must be a finite number"),  # JSON's reader makes it infinite
        (b"1" + b"0" * 400, "range bound gte, an integer of 401 digits, is beyond the range of the floats"),
    ],
    ids=["nan", "inf", "-inf", "1e400", "10**400"],
)
@pytest.mark.parametrize("path", ["/v1/search", "/v1/query"])
def test_a_range_bound_that_is_no_finite_number_is_400_naming_the_key(
    client: httpx.Client, path: str, bound: bytes, message: str
) -> None:
    body = b'{"query": "x", "filters": {"page_start": {"gte": ' + bound + b"}}}"
    refused(client.post(path, content=body, headers=JSON), 400, f"filter 'page_start': {message}")


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("DELETE", "/v1/documents/" + "d" * 257, "doc_id: String should have at most 256 characters"),
        ("DELETE", "/v1/documents/x?collection=..", "collection: String should match pattern"),
        ("DELETE", "/v1/documents/x?collection=" + "c" * 256, "collection: String should match pattern"),
        ("GET", "/v1/jobs/" + "j" * 65, "job_id: String should have at most 64 characters"),
        ("POST", "/v1/ingest?collection=..", "collection: String should match pattern"),
        ("POST", "/v1/ingest?collection=.hidden", "collection: String should match pattern"),
    ],
)
def test_bad_path_and_query_parameters_are_422(
    client: httpx.Client, method: str, path: str, message: str
) -> None:
    files = {"file": ("a.md", NOTE)} if method == "POST" else None
    refused(client.request(method, path, files=files, headers=ADMIN), 422, message)


# --- unknown collections, documents and jobs ----------------------------------------------------------


def test_unknown_collections_documents_and_jobs_are_404(client: httpx.Client) -> None:
    unknown = "no-such-collection"
    refused(
        client.post("/v1/search", json={"query": "x", "collection": unknown}, headers=ADMIN), 404, unknown
    )
    refused(client.post("/v1/query", json={"query": "x", "collection": unknown}, headers=ADMIN), 404, unknown)
    refused(client.delete("/v1/documents/x", params={"collection": unknown}, headers=ADMIN), 404, unknown)
    refused(
        client.delete("/v1/documents/%00", headers=ADMIN), 404, "no document '\\x00' in collection 'docs'"
    )
    refused(client.get("/v1/jobs/%00", headers=ADMIN), 404, "no job")
    refused(client.get("/v1/jobs/..%2F..%2Fetc", headers=ADMIN), 404, "Not Found")
    refused(client.get("/v1/no-such-endpoint", headers=ADMIN), 404, "Not Found")
    assert unknown not in {
        c["name"] for c in client.get("/v1/collections", headers=ADMIN).json()["collections"]
    }


# --- path tricks in upload names ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("../../escape.md", "escape.md"),
        ("/etc/cron.d/evil.md", "evil.md"),
        ("C:\\Windows\\System32\\evil.md", "evil.md"),
        ("a\x00b.md", "a%00b.md"),  # httpx percent-encodes the NUL; the server keeps it as text
        ("\x01\x02ctl.md", "%01%02ctl.md"),
        ("...md.md", "md.md"),
        ("n" * 300 + ".md", "n" * 197 + ".md"),  # a long name loses the end of its stem, not its type
    ],
    ids=["dotdot", "absolute", "windows", "nul", "control", "leading-dots", "long"],
)
def test_path_tricks_in_upload_names_never_become_paths(
    client: httpx.Client, root: Path, sent: str, kept: str
) -> None:
    response = upload(client, sent, collection="names")
    assert response.status_code == 202, response.text
    job = finished_job(client, response.json()["id"])
    assert (job["status"], job["filename"]) == ("succeeded", kept)
    assert not (root.parent / "escape.md").exists() and not list(root.rglob("evil.md"))
    assert not list((root / "work").rglob("*.*"))  # staged and ingested files are all gone


@pytest.mark.parametrize(
    ("name", "status", "message"),
    [
        ("..", 415, "cannot ingest 'upload': unsupported file type '(no suffix)'"),
        ("/etc/passwd", 415, "cannot ingest 'passwd': unsupported file type '(no suffix)'"),
        ("x" * 20_000 + ".md", 400, "malformed multipart body: Maximum header size exceeded"),
        ("evil.md.exe", 415, "unsupported file type '.exe'"),
    ],
    ids=["dotdot", "no-suffix", "huge", "double-suffix"],
)
def test_unusable_upload_names_are_refused(
    client: httpx.Client, name: str, status: int, message: str
) -> None:
    refused(upload(client, name), status, message)


def test_an_rfc5987_file_name_is_read_and_sanitised(client: httpx.Client) -> None:
    body = (
        b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename*=UTF-8''..%2F..%2Fn%C3%B8te.md\r\n\r\n"
        + NOTE
        + b"\r\n--b--\r\n"
    )
    response = multipart(client, body)
    assert response.status_code == 202, response.text
    assert finished_job(client, response.json()["id"])["filename"] == "nøte.md"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.md"\r\n\r\n# A',
            400,
            "ended before its closing boundary",
        ),
        (
            b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\n# A\r\n--b--\r\n',
            400,
            "the 'file' field has no file name",
        ),
        (b"garbage", 400, "malformed multipart body"),
        (b"--b--\r\n", 400, "no file in the upload"),
    ],
    ids=["truncated", "no-filename", "garbage", "no-parts"],
)
def test_malformed_multipart_bodies_are_400(
    client: httpx.Client, root: Path, body: bytes, status: int, message: str
) -> None:
    refused(multipart(client, body), status, message)
    assert not list((root / "work" / "incoming").iterdir())


def test_a_multipart_upload_without_a_boundary_is_415(client: httpx.Client) -> None:
    response = client.post(
        "/v1/ingest", content=NOTE, headers=ADMIN | {"Content-Type": "multipart/form-data"}
    )
    refused(response, 415, "send the document as multipart/form-data")

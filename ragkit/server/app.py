"""The FastAPI app: routes, authentication, and the lifecycle of the engine, the jobs and the store.

No `from __future__ import annotations` here: FastAPI reads the route signatures at run time, and the
dependencies declared inside `create_app` could not be resolved from strings.
"""

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import asdict
from importlib import import_module
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from swagger_ui_bundle import swagger_ui_path

import ragkit
from ragkit.errors import StoreError
from ragkit.llm import as_llm
from ragkit.query_engine import QueryEngine
from ragkit.server import errors
from ragkit.server.auth import OPEN, Grant
from ragkit.server.collections import Collections, CollectionView
from ragkit.server.config import MAX_JSON_BYTES, ServerConfig
from ragkit.server.engine import Engine
from ragkit.server.jobs import Jobs
from ragkit.server.metrics import Metrics
from ragkit.server.middleware import BodyLimit, Observe
from ragkit.server.schemas import (
    COLLECTION_PATTERN,
    CollectionDeleted,
    CollectionsResponse,
    DeleteResponse,
    ErrorOut,
    IndexResponse,
    JobOut,
    QueryRequest,
    QueryResponse,
    SearchRequest,
    SearchResponse,
)
from ragkit.server.uploads import receive_upload
from ragkit.store import CollectionInfo, Store

T = TypeVar("T")

STATIC = Path(__file__).parent / "static"
READY_TIMEOUT_S = 5.0
# The page loads only its own script and style and talks only to this server.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text}
    for status, text in {
        400: "bad input",
        401: "missing or unknown API key",
        403: "the key may not use this collection",
        404: "no such collection, document or job",
        413: "body too large",
        422: "invalid field",
    }.items()
}
_UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}},
            }
        }
    },
}
CollectionParam = Annotated[
    str | None, Query(pattern=COLLECTION_PATTERN, description="defaults to the server's collection")
]


def create_app(config: ServerConfig) -> FastAPI:
    """The service over `config`'s store. The store is opened here, so that a locked folder or an
    unreachable server fails now; the engine and the model start with the app (uvicorn's lifespan)."""
    collections = Collections.open(
        config.collection,
        store=config.store,
        url=config.url,
        api_key=config.qdrant_api_key,
        model=config.model,
        device=config.device,
    )
    metrics = Metrics()
    engine = Engine(collections, metrics)
    jobs = Jobs(
        engine,
        collections,
        config.work_dir.expanduser().resolve(),
        metrics,
        config.collection_options,
        index_after=config.index_after,
    )
    llm = as_llm(None)  # RAGKIT_LLM_URL's server, else extractive answers
    default = collections.default.collection
    warm: Future[Any] = Future()
    bearer = HTTPBearer(auto_error=False, description="an API key, when the server is configured with keys")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal warm
        engine.start()
        warm = engine.call(lambda: collections.default.encoder)  # /readyz reports on it
        try:
            yield
        finally:
            jobs.close()
            engine.stop()
            collections.close()

    app = FastAPI(
        title="ragkit",
        version=ragkit.__version__,
        description="Semantic search over whole-section embeddings of long documents, with answers "
        "that cite their sources. Send `Authorization: Bearer <key>` when the server has keys.",
        lifespan=lifespan,
        docs_url=None,  # served below from packaged assets: FastAPI's default page loads them from a CDN
        redoc_url=None,  # ReDoc's page loads its script from a CDN too; /docs covers the same schema
    )
    errors.install(app)
    app.add_middleware(BodyLimit, default=MAX_JSON_BYTES, by_path={"/v1/ingest": config.max_upload_body})
    app.add_middleware(Observe, metrics=metrics)

    def authorize(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Grant:
        if not config.keys.enabled:
            return OPEN
        challenge = {"WWW-Authenticate": "Bearer"}
        if credentials is None:
            raise HTTPException(401, "missing API key: send 'Authorization: Bearer <key>'", challenge)
        grant = config.keys.lookup(credentials.credentials)
        if grant is None:
            raise HTTPException(401, "unknown API key", challenge)
        return grant

    Caller = Annotated[Grant, Depends(authorize)]

    def permitted(grant: Grant, collection: str | None) -> str:
        name = collection or default
        if not grant.allows(name):
            raise HTTPException(403, f"this API key may not use collection {name!r}")
        return name

    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers. No key needed."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["service"], responses={503: {"description": "not ready"}})
    async def readyz() -> JSONResponse:
        """Readiness: the default collection's model is loaded and the store answers. No key needed."""
        if not warm.done():
            return _not_ready("loading", "the model is still loading")
        if warm.exception() is not None:
            return _not_ready("failed", f"the model failed to load: {warm.exception()}")
        try:
            await asyncio.wait_for(_wait(engine.call(collections.store.collections)), READY_TIMEOUT_S)
        except (StoreError, TimeoutError) as exc:
            return _not_ready("store unreachable", str(exc) or "the store did not answer in time")
        return JSONResponse({"status": "ready", "collection": default, "model": warm.result().name})

    @app.post("/v1/search", tags=["search"], response_model=SearchResponse, responses=_ERRORS)
    async def search(body: SearchRequest, grant: Caller) -> dict[str, Any]:
        """The sections that best match the query, best first."""
        name = permitted(grant, body.collection)
        found = engine.search(
            name,
            body.query,
            top_k=body.top_k,
            filters=body.filters,
            score_threshold=body.score_threshold,
            mode=body.mode,
            fusion=body.fusion,
        )
        return {"hits": [asdict(hit) for hit in await _wait(found)]}

    @app.post("/v1/query", tags=["search"], response_model=QueryResponse, responses=_ERRORS)
    async def query(body: QueryRequest, grant: Caller) -> dict[str, Any]:
        """An answer with numbered sources: from the LLM at RAGKIT_LLM_URL, else the best sentences."""
        name = permitted(grant, body.collection)
        kit = await _wait(engine.call(collections.get, name))
        encoder = await _wait(engine.call(lambda: kit.encoder))
        # The query engine gets a view in place of the Kit, so that its searches and encoder calls go
        # through the engine thread like everyone else's.
        answerer = QueryEngine(
            CollectionView(engine, kit, encoder, background=False),
            llm,
            top_k=body.top_k,
            context_tokens=body.context_tokens,
            filters=body.filters,
            score_threshold=body.score_threshold,
            mode=body.mode,
            fusion=body.fusion,
        )
        return (await answerer.aquery(body.query)).to_dict()

    @app.get("/v1/collections", tags=["collections"], response_model=CollectionsResponse, responses=_ERRORS)
    async def list_collections(grant: Caller) -> dict[str, Any]:
        """The collections this key may use, with their model and size."""
        infos = await _wait(engine.call(_collection_infos, collections.store, grant))
        return {"collections": [asdict(info) for info in infos]}

    @app.delete(
        "/v1/documents/{doc_id}", tags=["collections"], response_model=DeleteResponse, responses=_ERRORS
    )
    async def delete_document(
        doc_id: Annotated[str, PathParam(min_length=1, max_length=256)],
        grant: Caller,
        collection: CollectionParam = None,
    ) -> dict[str, Any]:
        """Delete every section of one document (its `doc_id`, as in hits' metadata and job records)."""
        name = permitted(grant, collection)
        kit = await _wait(engine.call(collections.get, name))
        # Not on the engine thread: a write waits for an index build, and the searches must not.
        deleted = await asyncio.to_thread(kit.delete_document, doc_id)
        if not deleted:
            raise HTTPException(404, f"no document {doc_id!r} in collection {name!r}")
        return {"collection": name, "doc_id": doc_id, "deleted": deleted}

    @app.delete(
        "/v1/collections/{name}", tags=["collections"], response_model=CollectionDeleted, responses=_ERRORS
    )
    async def delete_collection(
        name: Annotated[str, PathParam(pattern=COLLECTION_PATTERN)], grant: Caller
    ) -> dict[str, Any]:
        """Delete a collection whole: its sections, indexes and recorded settings (the way to build it
        again with others). Uploads queued before this are ingested first; searches go on meanwhile."""
        name = permitted(grant, name)
        points = await _wait(jobs.delete_collection(name))
        return {"collection": name, "points": points}

    @app.post("/v1/index", tags=["collections"], response_model=IndexResponse, responses=_ERRORS)
    async def build_index(grant: Caller, collection: CollectionParam = None) -> dict[str, Any]:
        """Build the vector index of the points that arrived since the last build, now; needs a key for
        every collection.

        Uploads build it by themselves once `--index-after` sections have arrived; until then new points
        are searched exactly, which stays fast (README, "Engines"). Searches go on during a build; writes
        wait for it, and it takes a copy of the collection's shard on disk meanwhile.
        """
        name = permitted(grant, collection)
        if grant.collections is not None:
            raise HTTPException(
                403, "building an index takes a copy of the store: it needs a key for every collection"
            )
        await _wait(engine.call(collections.get, name))  # a missing collection is a 404
        # Not on the engine thread, which answers the searches that go on meanwhile.
        seconds = await asyncio.to_thread(collections.store.build_index, name)
        return {"collection": name, "seconds": seconds}

    @app.post(
        "/v1/ingest",
        tags=["ingestion"],
        status_code=202,
        response_model=JobOut,
        responses=_ERRORS | {415: {"model": ErrorOut, "description": "unsupported file type"}},
        openapi_extra={"requestBody": _UPLOAD_BODY},
    )
    async def ingest(request: Request, grant: Caller, collection: CollectionParam = None) -> JSONResponse:
        """Upload one document (multipart field `file`) to ingest in the background; poll the job.

        Uploading a file of the same name again updates that document.
        """
        name = permitted(grant, collection)
        supported = await asyncio.to_thread(_supported_suffixes)
        upload = await receive_upload(request, jobs.staging, supported)
        record = jobs.submit(name, upload)
        return JSONResponse(record, status_code=202, headers={"Location": f"/v1/jobs/{record['id']}"})

    @app.get("/v1/jobs/{job_id}", tags=["ingestion"], response_model=JobOut, responses=_ERRORS)
    async def job(job_id: Annotated[str, PathParam(max_length=64)], grant: Caller) -> dict[str, Any]:
        """An ingestion job's status, and its report once it has run."""
        record = jobs.get(job_id)
        # Another key's job is not found either: a 403 would name a collection this key may not see.
        if record is None or not grant.allows(record["collection"]):
            raise HTTPException(404, f"no job {job_id!r} (jobs are kept in memory until the server stops)")
        return record

    @app.get("/metrics", tags=["service"], response_class=Response)
    async def prometheus() -> Response:
        """Prometheus metrics: requests, latencies, embedding tokens, engine queue depth. No key needed."""
        content, media_type = metrics.render()
        return Response(content, media_type=media_type)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_POLICY})

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="ragkit API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")
    return app


async def _wait(future: Future[T]) -> T:
    return await asyncio.wrap_future(future)


def _not_ready(status: str, detail: str) -> JSONResponse:
    return JSONResponse({"status": status, "detail": detail}, status_code=503)


def _collection_infos(store: Store, grant: Grant) -> list[CollectionInfo]:
    infos = []
    for name in store.collections():
        if not grant.allows(name):
            continue
        try:
            infos.append(store.collection_info(name))
        except StoreError:  # a collection some other program made in the same Qdrant: not ours to list
            continue
    return infos


def _supported_suffixes() -> frozenset[str]:
    return import_module("ingest.parse").SUPPORTED_SUFFIXES

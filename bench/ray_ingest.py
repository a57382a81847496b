"""Ingestion on Ray Data against the one-machine pipeline: the same files, model, device and machine.

Both write to a fresh embedded store. The model is loaded and the parsers imported outside the one-machine
timing; the Ray job's figure includes what a Ray job pays on top of that, once per job: starting its
parsing workers and encoder actors and loading the model in each. Starting Ray itself is timed apart.
Prints figures side by side; asserts nothing.

    apt-get install postgresql-doc-15      # the PostgreSQL manual, ~1,100 HTML pages
    python -m bench.ray_ingest --limit 150
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench.ingest import DEFAULT_CORPUS, corpus_files, run_ragkit


def run_on_ray(files: list[Path], store: Path, model: str, device: str) -> tuple[float, dict]:
    import ragkit

    with ragkit.open("bench", store=store, model=model, device=device) as kit:
        start = time.perf_counter()
        report = kit.ingest(files, ray=True)
        return time.perf_counter() - start, report.to_dict()


def start_ray(cpus: int) -> float:
    """Seconds to start a local Ray whose workers import this checkout (as `ragkit ingest --ray` does)."""
    import ray

    import ingest
    import ragkit

    start = time.perf_counter()
    ray.init(
        address="local", num_cpus=cpus, runtime_env={"py_modules": [ragkit, ingest]}, logging_level="ERROR"
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--limit", type=int, default=150, help="number of files")
    parser.add_argument("--workers", type=int, default=None, help="one-machine parsing processes")
    parser.add_argument("--cpus", type=int, default=os.cpu_count(), help="CPUs the local Ray may use")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for GPU encoder actors")
    args = parser.parse_args()

    files = corpus_files(args.corpus, args.limit)
    megabytes = sum(f.stat().st_size for f in files) / 2**20
    with tempfile.TemporaryDirectory() as scratch:
        one_s, one, dtype = run_ragkit(files, Path(scratch) / "one", "minilm", args.workers, args.device)
        startup_s = start_ray(args.cpus)
        ray_s, on_ray = run_on_ray(files, Path(scratch) / "ray", "minilm", args.device)

    print(
        f"corpus: {len(files)} HTML files ({megabytes:.1f} MiB) from {args.corpus}; model all-MiniLM-L6-v2, "
        f"device {args.device}, {dtype}; {os.cpu_count()} CPUs, local Ray with {args.cpus}"
    )
    print(f"{'runner':<26}{'seconds':>9}{'docs/s':>9}{'points':>8}{'tokens':>10}{'tokens/s':>10}")
    for name, seconds, report in (("one machine", one_s, one), ("Ray Data (local)", ray_s, on_ray)):
        print(
            f"{name:<26}{seconds:>9.1f}{len(files) / seconds:>9.2f}{report['sections_embedded']:>8}"
            f"{report['tokens_embedded']:>10,}{report['tokens_embedded'] / seconds:>10,.0f}"
        )
    same = all(
        one[key] == on_ray[key] for key in ("documents_ingested", "sections_embedded", "tokens_embedded")
    )
    print(f"overhead ratio Ray / one machine: {ray_s / one_s:.2f}x wall time (same work: {same})")
    print(f"Ray start (ray.init, not in the job's figure): {startup_s:.1f}s")


if __name__ == "__main__":
    main()

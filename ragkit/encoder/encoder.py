"""The encoder: texts in, L2-normalised float32 vectors out, in input order, at full speed.

It runs transformers' native model in inference mode. On CPU it uses fp32 (bf16 on CPUs without
AMX is hundreds of times slower), with the linear layers' weights packed for oneDNN on x86 (see
ragkit.encoder.packed_linear); on CUDA bf16 (fp16 where bf16 is missing) and packs a batch's texts
into one row, so no padding is computed (see ragkit.encoder.attention).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import torch
import torch.nn.functional as F
from torch._dynamo.exc import TorchDynamoException

from ragkit.encoder.attention import FLEX, IMPLEMENTATION, PADDED, document_mask, pick_attention
from ragkit.encoder.batching import plan_batches
from ragkit.encoder.checkpoint import Checkpoint, inspect_checkpoint, load_model, load_tokenizer
from ragkit.encoder.packed_linear import can_pack
from ragkit.encoder.resolve import resolve_model
from ragkit.encoder.tokens import TokenCounter, encode_batch
from ragkit.errors import InputError, InputTooLongError, ModelLoadError, RagkitError

log = logging.getLogger(__name__)

CPU_BATCH_TOKENS = 2_048  # measured: small batches stay in cache and beat large ones on CPU
CUDA_BATCH_TOKENS = 131_072


@dataclass
class EncodeStats:
    """Running totals since the encoder was loaded; the ingestion report reads them."""

    texts: int = 0
    tokens: int = 0
    truncated_texts: int = 0
    truncated_tokens: int = 0
    seconds: float = 0.0


class Encoder:
    """A local embedding model. Build one with `Encoder.from_pretrained`."""

    def __init__(
        self,
        name: str,
        checkpoint: Checkpoint,
        *,
        device: torch.device,
        dtype: torch.dtype,
        max_length: int | None,
        attention: str = "auto",
        pack_weights: bool = True,
    ) -> None:
        self.name = name
        self.device = device
        self.dtype = dtype
        self.pooling = checkpoint.pooling
        self.max_length = _check_max_length(max_length, checkpoint)
        self.stats = EncodeStats()
        self._tokenizer = load_tokenizer(checkpoint.path)
        self.token_counter = TokenCounter(self._tokenizer)
        self.attention = pick_attention(attention, device, packable=checkpoint.is_gte)
        self._attention_chosen_by_us = attention == "auto"
        # Packed calls run one at a time, so that a fallback to padded attention (below) never switches
        # the model's kernel under a packed row still in flight, which would then run without its mask.
        self._packed_lock = threading.Lock()
        self.packed_weights = pack_weights and can_pack(device, dtype)
        self._model = load_model(
            checkpoint,
            device=device,
            dtype=dtype,
            attn_implementation=IMPLEMENTATION[self.attention],
            packed=self.packed_weights,
        )
        self.dim = int(checkpoint.config.hidden_size)
        self._pad_id = int(checkpoint.config.pad_token_id or 0)
        self._sep_id = self._tokenizer.token_to_id("[SEP]") or self._tokenizer.token_to_id("</s>")

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str],
        *,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype | None = None,
        max_length: int | None = None,
        attention: str = "auto",
        pack_weights: bool = True,
    ) -> Encoder:
        """Load a gte-*-en-v1.5 (original or converted) or BERT-family sentence-transformers checkpoint.

        `name_or_path` is a directory, a hub id found in the local cache, or an alias
        (`minilm`, `gte-large`, `gte-base`). `max_length` may lower the model's limit, never raise it.
        `attention`: `auto` (packed flash/flex attention on CUDA for gte, padded SDPA otherwise),
        `padded`, `flash` or `flex`. `pack_weights=False` keeps torch's default fp32 CPU matmul instead
        of oneDNN with packed weights (for comparison: 1.26× slower here).
        """
        resolved = resolve_model(name_or_path)
        checkpoint = inspect_checkpoint(resolved.path)
        torch_device = pick_device(device)
        return cls(
            resolved.name,
            checkpoint,
            device=torch_device,
            dtype=_pick_dtype(dtype, torch_device),
            max_length=max_length,
            attention=attention,
            pack_weights=pack_weights,
        )

    def __repr__(self) -> str:
        return f"Encoder({self.name!r}, dim={self.dim}, max_length={self.max_length}, device={self.device})"

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids with the model's special tokens, never truncated."""
        return self._ids(_check_texts(texts, "tokenize"))

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts as the model sees them, special tokens included (what max_length limits)."""
        return self.token_counter(_check_texts(texts, "count_tokens"))

    def _ids(self, texts: list[str]) -> list[list[int]]:
        return [encoding.ids for encoding in encode_batch(self._tokenizer, texts)]

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_tokens: int | None = None,
        show_progress: bool = False,
        truncate: bool = False,
    ) -> np.ndarray:
        """Embed texts into an (n, dim) float32 array, L2-normalised when the model says so, in input order.

        A text over `max_length` tokens raises InputTooLongError unless `truncate=True`; truncated texts
        are then counted in `stats` and logged, never cut silently. `batch_tokens` bounds the padded
        tokens of one forward pass, and with it the memory used.
        """
        started = time.perf_counter()
        budget = self._default_budget() if batch_tokens is None else _check_budget(batch_tokens)
        ids, truncated = self._fit(self._ids(_check_texts(texts, "encode")), truncate)
        lengths = [len(row) for row in ids]  # a text longer than the budget still gets a batch of its own
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        progress = _progress(sum(lengths), show_progress)
        try:
            with torch.inference_mode():
                for batch in plan_batches(lengths, budget):
                    rows = [ids[i] for i in batch]
                    vectors = self._embed(rows)
                    self._refuse_non_finite(vectors, batch)
                    out[batch] = vectors
                    if progress is not None:
                        progress.update(sum(len(row) for row in rows))
        finally:  # a failed call leaves no progress bar open
            if progress is not None:
                progress.close()
        # Counted once the vectors exist, so that a failed call counts nothing.
        if truncated:
            self.stats.truncated_texts += truncated[0]
            self.stats.truncated_tokens += truncated[1]
            log.warning(
                "truncated %d text(s) to %d tokens, dropping %d tokens",
                truncated[0],
                self.max_length,
                truncated[1],
            )
        self.stats.texts += len(ids)
        self.stats.tokens += sum(lengths)
        self.stats.seconds += time.perf_counter() - started
        return out

    def _fit(self, ids: list[list[int]], truncate: bool) -> tuple[list[list[int]], tuple[int, int] | None]:
        """The rows cut to max_length when truncating, and (texts cut, tokens dropped) when any were."""
        over = [i for i, row in enumerate(ids) if len(row) > self.max_length]
        if not over:
            return ids, None
        if not truncate:
            first = over[0]
            raise InputTooLongError(
                f"{len(over)} text(s) exceed the model's limit of {self.max_length} tokens (text #{first} has "
                f"{len(ids[first])}); split them (ragkit ingest does this by section) or pass truncate=True"
            )
        dropped = sum(len(ids[i]) - self.max_length for i in over)
        rows = [
            row if len(row) <= self.max_length else row[: self.max_length - 1] + [self._sep_id] for row in ids
        ]
        return rows, (len(over), dropped)

    def _refuse_non_finite(self, vectors: np.ndarray, batch: list[int]) -> None:
        finite = np.isfinite(vectors).all(axis=1)
        if not finite.all():
            first = batch[int(np.argmin(finite))]
            raise RagkitError(
                f"{self.name} produced NaN or infinite values for {int((~finite).sum())} text(s) (text #{first}) "
                f"in {str(self.dtype).removeprefix('torch.')}; no vector is returned. On a GPU, dtype='float32' "
                "avoids half-precision overflow; otherwise the checkpoint's weights are unfit"
            )

    def _default_budget(self) -> int:
        return CUDA_BATCH_TOKENS if self.device.type == "cuda" else CPU_BATCH_TOKENS

    def _embed(self, rows: list[list[int]]) -> np.ndarray:
        if self.attention == PADDED:
            return self._embed_padded(rows)
        with self._packed_lock:
            mode = self.attention  # read again: another call may have fallen back while this one waited
            if mode == PADDED:
                return self._embed_padded(rows)
            try:
                return self._embed_packed(rows, mode)
            except TorchDynamoException as exc:  # flex attention is compiled on first use
                if not self._attention_chosen_by_us:
                    raise ModelLoadError(
                        f"{mode} attention could not be compiled on this machine ({exc}); "
                        "use attention='auto' or 'padded'"
                    ) from exc
                log.warning(
                    "%s attention could not be compiled here (%s); using padded SDPA attention instead",
                    mode,
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                )
                self._model.set_attn_implementation(IMPLEMENTATION[PADDED])
                self.attention = PADDED
        return self._embed_padded(rows)

    def _embed_padded(self, rows: list[list[int]]) -> np.ndarray:
        longest = max(len(row) for row in rows)
        input_ids = torch.full((len(rows), longest), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), longest), dtype=torch.long)
        for r, row in enumerate(rows):
            input_ids[r, : len(row)] = torch.tensor(row)
            mask[r, : len(row)] = 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        states = self._model(input_ids=input_ids, attention_mask=mask).last_hidden_state.float()
        if self.pooling.mode == "cls":
            pooled = states[:, 0]
        else:
            weights = mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1)
        return self._finish(pooled)

    def _embed_packed(self, rows: list[list[int]], mode: str) -> np.ndarray:
        """One row of concatenated texts, positions restarting at each; no compute is spent on padding."""
        lengths = torch.tensor([len(row) for row in rows])
        starts = torch.cumsum(lengths, 0) - lengths
        input_ids = torch.tensor([t for row in rows for t in row], device=self.device).unsqueeze(0)
        position_ids = torch.cat([torch.arange(n) for n in lengths.tolist()]).to(self.device).unsqueeze(0)
        # flash-attn finds the boundaries in position_ids; flex attention needs them as a mask.
        mask = document_mask(lengths.tolist(), self.device) if mode == FLEX else None
        states = self._model(input_ids=input_ids, position_ids=position_ids, attention_mask=mask)
        states = states.last_hidden_state[0].float()
        if self.pooling.mode == "cls":
            pooled = states[starts.to(self.device)]
        else:
            segment = torch.repeat_interleave(torch.arange(len(rows)), lengths).to(self.device)
            sums = torch.zeros((len(rows), states.shape[-1]), device=self.device).index_add_(
                0, segment, states
            )
            pooled = sums / lengths.to(self.device).unsqueeze(-1)
        return self._finish(pooled)

    def _finish(self, pooled: torch.Tensor) -> np.ndarray:
        if self.pooling.normalize:
            pooled = F.normalize(pooled, p=2, dim=-1)
        return pooled.cpu().numpy()


def _check_texts(texts: Sequence[str], verb: str) -> list[str]:
    if isinstance(texts, str):
        raise InputError(f"{verb}() takes a list of texts; wrap a single text in a list")
    texts = list(texts)
    if not texts:
        raise InputError(f"no texts to {verb.replace('_', ' ')}: the list is empty")
    bad = next((i for i, text in enumerate(texts) if not isinstance(text, str)), None)
    if bad is not None:
        raise InputError(f"text #{bad} is a {type(texts[bad]).__name__}, not a str")
    return texts


def _check_budget(batch_tokens: object) -> int:
    if isinstance(batch_tokens, bool) or not isinstance(batch_tokens, Integral) or batch_tokens < 1:
        raise InputError(f"batch_tokens={batch_tokens!r} is not a positive whole number of tokens")
    return int(batch_tokens)


def _check_max_length(requested: int | None, checkpoint: Checkpoint) -> int:
    if requested is None:
        return checkpoint.max_length
    if isinstance(requested, bool) or not isinstance(requested, Integral):
        raise InputError(f"max_length={requested!r} is not a whole number of tokens")
    requested = int(requested)
    if not 2 <= requested <= checkpoint.position_limit:
        raise InputError(
            f"max_length={requested} is outside 2..{checkpoint.position_limit}, the limit of {checkpoint.path}"
        )
    return requested


def pick_device(device: str | torch.device) -> torch.device:
    """`auto` is CUDA when there is a GPU, else the CPU; anything else names a device, which must exist."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"device {device!r} is not a device: use auto, cpu, cuda or cuda:N") from exc
    if chosen.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            raise InputError(
                f"device {device!r}: this machine has no CUDA GPU that torch can use; use auto or cpu"
            )
        if chosen.index is not None and chosen.index >= count:
            raise InputError(
                f"device {device!r}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}"
            )
    elif chosen.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device {device!r}: MPS is not available here; use auto or cpu")
    return chosen


_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def _pick_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is not None:
        if dtype not in _DTYPES:
            raise InputError(f"dtype {dtype!r} is not one of {', '.join(_DTYPES)}")
        return _DTYPES[dtype]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def _progress(total_tokens: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total_tokens, unit="tok", unit_scale=True, desc="embedding")

"""Which attention kernel an encoder runs, and the document mask that lets a batch be packed.

Packed batches concatenate their texts into one row, so no compute is spent on padding: flash-attn's
varlen kernel finds the text boundaries in the position ids; flex attention is given a block mask that
keeps each token inside its own text. Padded SDPA is the CPU default, where packing buys nothing.
Packing needs rotary positions (gte): the position ids restart at each text.
"""

from __future__ import annotations

import importlib.util

import torch

from ragkit.errors import InputError

PADDED, FLASH, FLEX = "padded", "flash", "flex"
IMPLEMENTATION = {PADDED: "sdpa", FLASH: "flash_attention_2", FLEX: "flex_attention"}
MASK_BLOCK = 128  # flex attention's block size


def pick_attention(requested: str, device: torch.device, *, packable: bool) -> str:
    """`auto`: flash-attn, else flex attention, on CUDA for gte models; padded SDPA otherwise."""
    if requested not in ("auto", *IMPLEMENTATION):
        raise InputError(f"attention {requested!r} is not one of auto, {', '.join(IMPLEMENTATION)}")
    if requested == "auto":
        if device.type != "cuda" or not packable:
            return PADDED
        return FLASH if flash_available() else FLEX if flex_available() else PADDED
    if requested != PADDED and not packable:
        raise InputError(f"{requested} attention packs texts, which needs a rotary-position (gte) model")
    if requested == FLASH and not flash_available():
        raise InputError("flash attention needs CUDA and the flash-attn package")
    if requested == FLEX and not flex_available():
        raise InputError("flex attention needs torch >= 2.5")
    return requested


def flash_available() -> bool:
    from transformers.utils import is_flash_attn_2_available

    return is_flash_attn_2_available()


def flex_available() -> bool:
    return importlib.util.find_spec("torch.nn.attention.flex_attention") is not None


def document_mask(lengths: list[int], device: torch.device):  # -> BlockMask
    """A flex-attention mask over concatenated texts: each token attends only within its own text.

    Built from the text boundaries at the level of 128-token blocks, in (total / 128)² steps:
    `create_block_mask` would evaluate the mask for every token pair, which for a 131,072-token GPU
    batch means tensors of 17 billion elements.
    """
    from torch.nn.attention.flex_attention import BlockMask

    total = sum(lengths)
    document = torch.repeat_interleave(
        torch.arange(len(lengths), device=device), torch.tensor(lengths, device=device)
    )

    def same_document(batch, head, query, key):  # noqa: ANN001 - flex passes index tensors
        return document[query] == document[key]

    starts = torch.arange(0, total, MASK_BLOCK, device=device)
    first = document[starts]  # the first and last text each block touches
    last = document[torch.clamp(starts + MASK_BLOCK - 1, max=total - 1)]
    touching = (first[:, None] <= last[None, :]) & (first[None, :] <= last[:, None])
    # A block pair needs no mask when both blocks are complete and inside one and the same text.
    whole = (first == last) & (starts + MASK_BLOCK <= total)
    full = whole[:, None] & whole[None, :] & (first[:, None] == first[None, :])
    partial = touching & ~full

    def as_kv_blocks(blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        counts = blocks.sum(-1, dtype=torch.int32)
        indices = torch.argsort((~blocks).to(torch.int8), dim=-1, stable=True).to(torch.int32)
        return counts[None, None], indices[None, None]

    return BlockMask.from_kv_blocks(
        *as_kv_blocks(partial),
        *as_kv_blocks(full),
        BLOCK_SIZE=MASK_BLOCK,
        mask_mod=same_document,
        seq_lengths=(total, total),
    )

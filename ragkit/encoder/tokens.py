"""Token counting with a model's own tokenizer, free of torch so parsing workers start fast."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tokenizers import Tokenizer

CountTokens = Callable[[Sequence[str]], list[int]]
"""What sectioning and chunking need of a model: token counts of texts, special tokens included.
`TokenCounter` is one; tests may pass any function of the same shape."""


class TokenCounter:
    """Counts tokens with a model's own tokenizer, special tokens included.

    Picklable (as the tokenizer's JSON), so parsing workers can section documents without the model.
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer

    def __call__(self, texts: Sequence[str]) -> list[int]:
        return [len(encoding) for encoding in self._tokenizer.encode_batch(list(texts))]

    def __reduce__(self) -> tuple[Callable[[str], TokenCounter], tuple[str]]:
        return _counter_from_json, (self._tokenizer.to_str(),)


def _counter_from_json(tokenizer_json: str) -> TokenCounter:
    return TokenCounter(Tokenizer.from_str(tokenizer_json))

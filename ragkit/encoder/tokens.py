"""Token counting with a model's own tokenizer, free of torch so parsing workers start fast."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tokenizers import Encoding, Tokenizer

from ragkit.errors import InputError

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
        return [len(encoding) for encoding in encode_batch(self._tokenizer, list(texts))]

    def __reduce__(self) -> tuple[Callable[[str], TokenCounter], tuple[str]]:
        return _counter_from_json, (self._tokenizer.to_str(),)


def encode_batch(tokenizer: Tokenizer, texts: list[str]) -> list[Encoding]:
    """The tokenizer's encodings, with a text that is not valid Unicode named instead of a TypeError."""
    try:
        return tokenizer.encode_batch(texts)
    except TypeError:
        for index, text in enumerate(texts):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InputError(
                    f"text #{index} is not valid Unicode: it holds a lone surrogate "
                    f"(U+{ord(text[exc.start]):04X}) at character {exc.start}"
                ) from None
            except AttributeError:  # not a str at all
                raise InputError(f"text #{index} is a {type(text).__name__}, not a str") from None
        raise


def _counter_from_json(tokenizer_json: str) -> TokenCounter:
    return TokenCounter(Tokenizer.from_str(tokenizer_json))

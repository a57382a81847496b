"""The encoder: native loading of gte and sentence-transformers checkpoints, with its numerics proven."""

from __future__ import annotations

import json
import os
import random
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch._dynamo.exc import TorchDynamoException

from ragkit import Encoder, InputError, InputTooLongError, ModelLoadError, RagkitError
from ragkit.encoder.packed_linear import PackedLinear, can_pack
from tests.tiny_gte import reference_embedding, write_converted_checkpoint, write_original_checkpoint

WORDS = [
    "river",
    "stone",
    "quiet",
    "library",
    "engine",
    "harvest",
    "signal",
    "orbit",
    "lantern",
    "meadow",
    "copper",
    "thunder",
]


def prose(n_words: int, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n_words)) + "."


@pytest.fixture(scope="module")
def tiny_gte(tmp_path_factory, minilm_path) -> Path:
    return write_original_checkpoint(tmp_path_factory.mktemp("gte-original"), minilm_path)


@pytest.fixture(scope="module")
def gte(tiny_gte) -> Encoder:
    return Encoder.from_pretrained(tiny_gte)


@pytest.fixture(scope="module")
def minilm() -> Encoder:
    return Encoder.from_pretrained("minilm")


# --- numerics -------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_words", [5, 60, 700])
def test_original_gte_matches_an_independent_reference(gte, tiny_gte, n_words):
    text = prose(n_words, seed=n_words)
    ids = gte.tokenize([text])[0]
    if n_words == 700:
        assert len(ids) > 512  # beyond BERT's positions: the RoPE path with NTK scaling is exercised
    expected = reference_embedding(tiny_gte, ids).numpy()
    actual = gte.encode([text])[0]
    assert np.abs(actual - expected).max() < 1e-4


def test_ntk_scaling_is_not_a_plain_doubled_base(tiny_gte, tmp_path, minilm_path):
    # The same weights with rope_theta*2 and no scaling give different vectors: the translation matters.
    plain = write_original_checkpoint(tmp_path / "plain", minilm_path)
    config = json.loads((plain / "config.json").read_text())
    config["rope_theta"] *= 2
    del config["rope_scaling"]
    (plain / "config.json").write_text(json.dumps(config))
    text = [prose(300, seed=3)]
    ntk = Encoder.from_pretrained(tiny_gte).encode(text)
    doubled = Encoder.from_pretrained(plain).encode(text)
    assert np.abs(ntk - doubled).max() > 1e-3


def test_vectors_are_normalised_and_in_input_order(gte):
    texts = [prose(n, seed=n) for n in (3, 400, 40, 1, 120)]
    together = gte.encode(texts)
    assert together.dtype == np.float32 and together.shape == (5, gte.dim)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    for text, vector in zip(texts, together, strict=True):
        assert np.abs(gte.encode([text])[0] - vector).max() < 1e-5  # batch invariance


def test_small_batch_budget_gives_the_same_vectors(gte):
    texts = [prose(n, seed=n) for n in range(1, 60, 7)]
    assert np.abs(gte.encode(texts, batch_tokens=64) - gte.encode(texts)).max() < 1e-5


def test_converted_gte_checkpoint_loads_to_the_same_vectors(gte, tiny_gte, tmp_path):
    write_converted_checkpoint(tiny_gte, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "gte"
    converted = Encoder.from_pretrained(tmp_path)
    texts = [prose(30, seed=1), prose(600, seed=2)]
    assert np.abs(converted.encode(texts) - gte.encode(texts)).max() < 1e-5


def test_type_vocab_size_zero_like_gte_base(tmp_path, minilm_path):
    base = write_original_checkpoint(tmp_path, minilm_path, type_vocab=0)
    encoder = Encoder.from_pretrained(base)
    ids = encoder.tokenize(["a gte-base shaped model"])[0]
    expected = reference_embedding(base, ids).numpy()
    assert np.abs(encoder.encode(["a gte-base shaped model"])[0] - expected).max() < 1e-4


def test_minilm_reproduces_its_published_similarities(minilm):
    vectors = minilm.encode(
        ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    )
    sims = vectors @ vectors.T
    assert round(float(sims[0, 1]), 4) == 0.6660
    assert round(float(sims[0, 2]), 4) == 0.1046
    assert round(float(sims[1, 2]), 4) == 0.1411


def test_minilm_matches_sentence_transformers(minilm, minilm_path):
    from sentence_transformers import SentenceTransformer

    texts = [prose(n, seed=n) for n in (2, 30, 200)]
    reference = SentenceTransformer(str(minilm_path), device="cpu").encode(texts, normalize_embeddings=True)
    assert np.abs(minilm.encode(texts) - reference).max() < 1e-5


def test_sentence_transformers_settings_are_honoured(minilm):
    assert minilm.max_length == 256 and minilm.dim == 384
    assert minilm.pooling.mode == "mean" and minilm.pooling.normalize


def test_stored_tokenizer_truncation_never_cuts_a_text(minilm):
    # all-MiniLM's tokenizer.json truncates at 128; the model's own limit (256) is what counts.
    text = prose(200, seed=7)
    assert minilm.count_tokens([text])[0] > 200
    head = minilm.encode([" ".join(text.split()[:120])])[0]
    assert float(minilm.encode([text])[0] @ head) < 0.9999


@pytest.mark.skipif(
    not os.environ.get("RAGKIT_TEST_GTE_LARGE"),
    reason="needs the real gte-large-en-v1.5 weights (no hub here): set RAGKIT_TEST_GTE_LARGE=DIR to run it",
)
def test_real_gte_large_golden_values():
    encoder = Encoder.from_pretrained(os.environ["RAGKIT_TEST_GTE_LARGE"])
    vectors = encoder.encode(
        [
            "what is the capital of China?",
            "how to implement quick sort in python?",
            "Beijing",
            "sorting algorithms",
        ]
    )
    scores = 100 * vectors[0] @ vectors[1:].T
    np.testing.assert_allclose(scores, [41.86, 77.07, 37.03], atol=0.1)


# --- limits and truncation -----------------------------------------------------------------------


def test_too_long_text_is_an_error_naming_it(minilm):
    with pytest.raises(InputTooLongError, match=r"limit of 256 tokens \(text #1 has \d+\)"):
        minilm.encode(["short", prose(400, seed=1)])


def test_truncation_when_asked_is_counted(minilm):
    before = minilm.stats.truncated_texts
    vectors = minilm.encode(["short", prose(400, seed=1)], truncate=True)
    assert vectors.shape == (2, 384)
    assert minilm.stats.truncated_texts == before + 1


def test_max_length_can_lower_but_not_raise_the_limit(tiny_gte):
    assert Encoder.from_pretrained(tiny_gte, max_length=64).max_length == 64
    with pytest.raises(InputError, match="outside 2..8192"):
        Encoder.from_pretrained(tiny_gte, max_length=9000)


def test_count_tokens_includes_special_tokens(minilm):
    assert minilm.count_tokens(["hello world", ""]) == [4, 2]


# --- bad input -----------------------------------------------------------------------------------


def test_missing_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        Encoder.from_pretrained(tmp_path / "nope")


def test_missing_weights(tiny_gte, tmp_path):
    shutil.copy(tiny_gte / "config.json", tmp_path / "config.json")
    with pytest.raises(ModelLoadError, match="no weights found"):
        Encoder.from_pretrained(tmp_path)


def test_unknown_model_type(tiny_gte, tmp_path):
    shutil.copytree(tiny_gte, tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ModelLoadError, match="model_type 'llama' is not supported"):
        Encoder.from_pretrained(tmp_path / "m")


def test_weights_with_foreign_names_are_rejected(tiny_gte, tmp_path):
    from safetensors.torch import load_file, save_file

    shutil.copytree(tiny_gte, tmp_path / "m")
    weights = {k.replace("qkv_proj", "qkv"): v for k, v in load_file(tiny_gte / "model.safetensors").items()}
    save_file(weights, tmp_path / "m" / "model.safetensors")
    with pytest.raises(ModelLoadError, match="tensors missing"):
        Encoder.from_pretrained(tmp_path / "m")


def test_uncached_hub_model_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(
        ModelLoadError, match=r"Alibaba-NLP/gte-large-en-v1.5.*Hugging Face cache.*RAGKIT_MODEL"
    ):
        Encoder.from_pretrained("Alibaba-NLP/gte-large-en-v1.5")


def test_hub_id_resolves_through_the_local_cache(tiny_gte, tmp_path, monkeypatch):
    import huggingface_hub.constants

    repo = tmp_path / "models--acme--tiny-gte"
    shutil.copytree(tiny_gte, repo / "snapshots" / "abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    encoder = Encoder.from_pretrained("acme/tiny-gte")
    assert encoder.name == "acme/tiny-gte" and encoder.dim == 64


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ([], "empty"),
        (["ok", 3], "text #1 is a int"),
        ("a bare string", "wrap a single text"),
        ([None], "NoneType"),
    ],
)
def test_bad_texts(minilm, texts, message):
    with pytest.raises(InputError, match=message):
        minilm.encode(texts)


# --- devices -------------------------------------------------------------------------------------


def test_cpu_runs_fp32(gte):
    assert gte.device.type == "cpu" and gte.dtype == torch.float32
    assert next(gte._model.parameters()).dtype == torch.float32


needs_onednn_packing = pytest.mark.skipif(
    not can_pack(torch.device("cpu"), torch.float32),
    reason="weights are packed for oneDNN on x86 CPUs only, and this is not one",
)


@needs_onednn_packing
@pytest.mark.parametrize("model", ["gte", "minilm"])
def test_every_linear_layer_is_packed_and_gives_the_vectors_of_torchs_own_matmul(model, request, tiny_gte):
    packed = request.getfixturevalue(model)
    plain = Encoder.from_pretrained(tiny_gte if model == "gte" else "minilm", pack_weights=False)
    assert packed.packed_weights and not plain.packed_weights
    linears = [layer for layer in plain._model.modules() if type(layer) is torch.nn.Linear]
    layers = list(packed._model.modules())
    assert linears and not any(type(layer) is torch.nn.Linear for layer in layers)
    assert sum(isinstance(layer, PackedLinear) for layer in layers) == len(linears)
    texts = [prose(n, seed=n) for n in (1, 4, 60, 200)]
    assert np.abs(packed.encode(texts) - plain.encode(texts)).max() < 1e-5
    assert np.abs(packed.encode(texts[:1]) - plain.encode(texts[:1])).max() < 1e-5  # a one-word query


@needs_onednn_packing
@pytest.mark.skipif(
    not Path("/proc/self/maps").exists(), reason="reads the process's mappings from Linux's /proc"
)
def test_packed_weights_are_not_kept_twice_through_a_mapping_of_the_file(tmp_path, minilm_path):
    # transformers keeps a memory-mapped checkpoint mapped for the model's life, so every page the packing
    # read would stay resident beside the packed copies.
    checkpoint = write_original_checkpoint(tmp_path / "m", minilm_path)
    encoder = Encoder.from_pretrained(checkpoint)
    encoder.encode(["the model has run"])
    assert str(checkpoint / "model.safetensors") not in Path("/proc/self/maps").read_text()


@needs_onednn_packing
@pytest.mark.parametrize("bias", [True, False])
def test_a_packed_linear_computes_what_the_linear_did_for_any_leading_shape(bias):
    torch.manual_seed(0)
    linear = torch.nn.Linear(48, 80, bias=bias)
    packed = PackedLinear(linear)
    with torch.inference_mode():
        for shape in [(1, 48), (7, 48), (3, 11, 48)]:
            x = torch.randn(*shape)
            assert packed(x).shape == linear(x).shape
            assert (packed(x) - linear(x)).abs().max() < 1e-5


def test_cpu_defaults_to_padded_sdpa(gte, minilm):
    assert gte.attention == minilm.attention == "padded"


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
def test_packed_flex_attention_gives_the_padded_vectors(tiny_gte, gte, monkeypatch):
    # The packing CUDA uses by default, run here on the CPU: one row, a document mask, no padding.
    # Flex attention runs eagerly here: inductor's CPU code generation is not what is under test.
    import transformers.integrations.flex_attention as flex

    monkeypatch.setattr(flex, "is_torchdynamo_compiling", lambda: True)  # makes it call flex_attention as is
    packed = Encoder.from_pretrained(tiny_gte, attention="flex")
    texts = [prose(n, seed=n) for n in (3, 700, 40, 1, 120)]
    assert np.abs(packed.encode(texts) - gte.encode(texts)).max() < 1e-5


@pytest.mark.parametrize("seed", range(12))
def test_document_mask_blocks_are_those_flex_derives_from_every_token_pair(seed):
    # ragkit builds the mask from text boundaries; create_block_mask evaluates all total² token pairs.
    from torch.nn.attention.flex_attention import create_block_mask

    from ragkit.encoder.attention import document_mask

    rng = random.Random(seed)
    lengths = [rng.choice([1, 127, 128, 129, 256, rng.randint(2, 700)]) for _ in range(rng.randint(1, 9))]
    total, cpu = sum(lengths), torch.device("cpu")
    document = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    expected = create_block_mask(lambda b, h, q, k: document[q] == document[k], None, None, total, total, cpu)
    ours = document_mask(lengths, cpu)

    def blocks(counts, indices):
        return [sorted(indices[0, 0, row, : counts[0, 0, row]].tolist()) for row in range(counts.shape[-1])]

    assert torch.equal(ours.to_dense(), expected.to_dense())
    assert blocks(ours.kv_num_blocks, ours.kv_indices) == blocks(expected.kv_num_blocks, expected.kv_indices)
    assert blocks(ours.full_kv_num_blocks, ours.full_kv_indices) == blocks(
        expected.full_kv_num_blocks, expected.full_kv_indices
    )


class _CompileFailed(TorchDynamoException):
    """What torch.compile raises when inductor cannot build flex attention for a machine."""


def _flex_compile_fails(monkeypatch):
    import ragkit.encoder.encoder as module

    def fail(*args):
        raise _CompileFailed("C++ compile error")

    monkeypatch.setattr(module, "document_mask", fail)


def test_packed_attention_chosen_automatically_falls_back_to_padded_when_it_cannot_compile(
    tiny_gte, gte, monkeypatch, caplog
):
    import ragkit.encoder.encoder as module

    monkeypatch.setattr(module, "pick_attention", lambda *args, **kwargs: "flex")  # as on a CUDA machine
    encoder = Encoder.from_pretrained(tiny_gte)
    assert encoder.attention == "flex"
    _flex_compile_fails(monkeypatch)
    texts = [prose(n, seed=n) for n in (3, 200, 40)]
    assert np.abs(encoder.encode(texts) - gte.encode(texts)).max() < 1e-5
    assert encoder.attention == "padded"
    assert "could not be compiled" in caplog.text


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
def test_a_fallback_to_padded_attention_never_switches_the_kernel_under_another_threads_packed_row(
    tiny_gte, gte, monkeypatch
):
    # Thread A's flex attention fails to compile while thread B encodes with the same encoder: B's
    # packed row must not be in the model when A switches it to padded attention (B's row would then
    # run, unmasked or with a mask the new kernel ignores, across its texts), and B's vectors are right.
    import transformers.integrations.flex_attention as flex

    import ragkit.encoder.encoder as module

    monkeypatch.setattr(flex, "is_torchdynamo_compiling", lambda: True)  # flex runs eagerly on the CPU
    monkeypatch.setattr(module, "pick_attention", lambda *args, **kwargs: "flex")  # as on a CUDA machine
    encoder = Encoder.from_pretrained(tiny_gte)
    a_compiling, b_in_model = threading.Event(), threading.Event()
    real_mask, masks = module.document_mask, []

    def mask_failing_first(lengths, device):
        masks.append(lengths)
        if len(masks) == 1:  # thread A's: fails once B is under way (or after a second if B must wait)
            a_compiling.set()
            b_in_model.wait(timeout=1)
            raise _CompileFailed("C++ compile error")
        return real_mask(lengths, device)

    in_model = []

    def enter(module_, args, kwargs):
        in_model.append(threading.current_thread().name)
        if threading.current_thread().name == "B":
            b_in_model.set()
            time.sleep(0.3)  # B's forward pass is still running when A falls back

    model = encoder._model
    handles = [
        model.register_forward_pre_hook(enter, with_kwargs=True),
        model.register_forward_hook(lambda *args: in_model.remove(threading.current_thread().name)),
    ]
    switches = []
    switch = model.set_attn_implementation
    monkeypatch.setattr(
        model, "set_attn_implementation", lambda name: (switches.append(list(in_model)), switch(name))
    )
    monkeypatch.setattr(module, "document_mask", mask_failing_first)
    texts = [prose(n, seed=n) for n in (3, 200, 40)]
    results = {}

    def run(name):
        results[name] = encoder.encode(texts)

    a = threading.Thread(target=run, args=("A",), name="A")
    a.start()
    a_compiling.wait(timeout=5)
    b = threading.Thread(target=run, args=("B",), name="B")
    b.start()
    a.join(timeout=30), b.join(timeout=30)
    for handle in handles:
        handle.remove()
    assert switches == [[]], "the kernel was switched while a forward pass was in the model"
    for name in "AB":
        assert np.abs(results[name] - gte.encode(texts)).max() < 1e-5, name


def test_packed_attention_asked_for_by_name_fails_clearly_when_it_cannot_compile(tiny_gte, monkeypatch):
    encoder = Encoder.from_pretrained(tiny_gte, attention="flex")
    _flex_compile_fails(monkeypatch)
    with pytest.raises(ModelLoadError, match="flex attention could not be compiled.*'padded'"):
        encoder.encode(["a text"])


def test_packing_needs_a_rotary_model(minilm_path):
    with pytest.raises(InputError, match="rotary-position"):
        Encoder.from_pretrained(minilm_path, attention="flex")
    with pytest.raises(InputError, match="not one of"):
        Encoder.from_pretrained(minilm_path, attention="fast")


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="the CUDA path needs a GPU, and this machine has none"
)
def test_cuda_half_precision_agrees_with_cpu_fp32(tiny_gte, gte):
    cuda = Encoder.from_pretrained(tiny_gte, device="cuda")
    assert cuda.dtype in (torch.bfloat16, torch.float16)
    assert cuda.attention in ("flash", "flex")  # packed, no padding
    texts = [prose(n, seed=n) for n in (3, 50, 900)]
    cosines = (cuda.encode(texts) * gte.encode(texts)).sum(1)
    assert cosines.min() > 0.99


# --- batching ------------------------------------------------------------------------------------


def test_batches_respect_the_token_budget_and_cover_every_text():
    from ragkit.encoder.batching import plan_batches

    rng = random.Random(0)
    lengths = [8192] + [rng.randint(3, 600) for _ in range(5000)]
    batches = plan_batches(lengths, budget=4096)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        padded = len(batch) * max(lengths[i] for i in batch)
        assert padded <= 4096 or len(batch) == 1
    assert batches[0] == [0]  # the 8192-token text runs alone, longest first
    waste = sum(len(b) * max(lengths[i] for i in b) for b in batches) / sum(lengths) - 1
    assert waste < 0.05  # sorting keeps padding negligible


def test_consecutive_groups_keep_order_and_fill_up_to_the_budget():
    from ragkit.encoder.batching import consecutive_groups

    sizes = [3, 4, 2, 9, 1, 1, 5]
    groups = consecutive_groups(sizes, lambda size: size, 7)
    assert [size for group in groups for size in group] == sizes
    assert groups == [[3, 4], [2], [9], [1, 1, 5]]  # 9 alone is over the budget, and still goes


def test_many_short_texts_and_one_long_text_come_back_in_input_order(gte):
    texts = [prose(n, seed=n) for n in range(1, 200)] + [prose(3000, seed=1)] + ["last"]
    vectors = gte.encode(texts, batch_tokens=1024)
    for index in (0, 57, 199, 200):
        assert np.abs(vectors[index] - gte.encode([texts[index]])[0]).max() < 1e-5


def test_the_packaged_minilm_has_one_name_by_alias_or_by_directory(minilm_path):
    assert Encoder.from_pretrained(minilm_path).name == Encoder.from_pretrained("minilm").name


# --- damaged checkpoints -------------------------------------------------------------------------


def _damage(tiny_gte: Path, directory: Path, change) -> Path:
    from safetensors.torch import load_file, save_file

    shutil.copytree(tiny_gte, directory)
    weights = load_file(tiny_gte / "model.safetensors")
    change(weights)
    save_file(weights, directory / "model.safetensors")
    return directory


def test_a_checkpoint_with_a_nan_weight_is_refused_when_it_loads(tiny_gte, tmp_path):
    # One NaN weight makes every vector NaN, and a vector store stores NaN vectors without complaint.
    def nan_bias(weights):
        weights["encoder.layer.0.mlp.down_proj.bias"][0] = float("nan")

    damaged = _damage(tiny_gte, tmp_path / "m", nan_bias)
    with pytest.raises(ModelLoadError, match=r"1 weight tensor\(s\) hold NaN or infinite values.*down_proj"):
        Encoder.from_pretrained(damaged)


def test_vectors_that_come_out_non_finite_are_an_error_not_a_result(tiny_gte, tmp_path):
    # Finite weights whose activations overflow float32 (as half precision overflows on a GPU).
    def huge_embeddings(weights):
        weights["embeddings.word_embeddings.weight"].mul_(1e38).clamp_(-3e38, 3e38)

    encoder = Encoder.from_pretrained(_damage(tiny_gte, tmp_path / "m", huge_embeddings))
    with pytest.raises(RagkitError, match=r"produced NaN or infinite values for 2 text\(s\)"):
        encoder.encode(["hello world", "another text"])


def test_a_half_downloaded_weights_file_is_a_load_error_naming_the_checkpoint(tiny_gte, tmp_path):
    shutil.copytree(tiny_gte, tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match=r"m: could not load weights: .*not fully covered"):
        Encoder.from_pretrained(tmp_path / "m")


def test_an_unreadable_tokenizer_json_is_a_load_error_naming_the_file(tiny_gte, tmp_path):
    from ragkit.encoder import EncoderSpec

    shutil.copytree(tiny_gte, tmp_path / "m")
    (tmp_path / "m" / "tokenizer.json").write_text("{not json")
    for load in (lambda: Encoder.from_pretrained(tmp_path / "m"), EncoderSpec(str(tmp_path / "m")).describe):
        with pytest.raises(ModelLoadError, match=r"tokenizer\.json is not a tokenizer"):
            load()


# --- sentence-transformers layouts ----------------------------------------------------------------


def test_a_model_saved_by_sentence_transformers_6_loads_as_sentence_transformers_reads_it(
    tmp_path, minilm_path
):
    # Version 6 writes {"pooling_mode": "mean"} and keeps the length limit in tokenizer_config.json only.
    from sentence_transformers import SentenceTransformer

    SentenceTransformer(str(minilm_path), device="cpu").save(str(tmp_path / "resaved"))
    reference = SentenceTransformer(str(tmp_path / "resaved"), device="cpu")
    encoder = Encoder.from_pretrained(tmp_path / "resaved")
    assert encoder.pooling.mode == "mean" and encoder.max_length == reference.max_seq_length == 256
    texts = ["The weather is lovely today.", prose(400, seed=1)]  # the second is cut at 256, as ST cuts it
    expected = reference.encode(texts, normalize_embeddings=True)
    assert np.abs(encoder.encode(texts, truncate=True) - expected).max() < 1e-5


def test_the_limit_falls_back_to_the_tokenizers_when_sentence_bert_config_has_none(tmp_path, minilm_path):
    from sentence_transformers import SentenceTransformer

    shutil.copytree(minilm_path, tmp_path / "m")
    (tmp_path / "m" / "sentence_bert_config.json").unlink()
    tokenizer_config = tmp_path / "m" / "tokenizer_config.json"
    tokenizer_config.write_text(
        json.dumps(json.loads(tokenizer_config.read_text()) | {"model_max_length": 300})
    )
    assert SentenceTransformer(str(tmp_path / "m"), device="cpu").max_seq_length == 300
    assert Encoder.from_pretrained(tmp_path / "m").max_length == 300  # not BERT's 512 positions


def test_sentence_transformers_modules_that_ragkit_does_not_run_are_refused(tmp_path, minilm_path):
    # e.g. LaBSE's Dense layer after pooling: skipping it gave other vectors, of another size.
    from sentence_transformers import SentenceTransformer, models

    base = SentenceTransformer(str(minilm_path), device="cpu")
    dense = models.Dense(384, 128, activation_function=torch.nn.Tanh())
    model = SentenceTransformer(modules=[base[0], base[1], dense, models.Normalize()], device="cpu")
    model.save(str(tmp_path / "d"))
    assert SentenceTransformer(str(tmp_path / "d"), device="cpu").encode(["a text"]).shape == (1, 128)
    # The pooling in the format of sentence-transformers < 6, which ragkit has always read.
    shutil.copy(minilm_path / "1_Pooling" / "config.json", tmp_path / "d" / "1_Pooling" / "config.json")
    with pytest.raises(ModelLoadError, match=r"modules\.json: module\(s\) .*Dense are not supported"):
        Encoder.from_pretrained(tmp_path / "d")


def test_pooling_that_concatenates_several_modes_is_refused(tmp_path, minilm_path):
    shutil.copytree(minilm_path, tmp_path / "m")
    pooling = tmp_path / "m" / "1_Pooling" / "config.json"
    pooling.write_text(json.dumps(json.loads(pooling.read_text()) | {"pooling_mode_cls_token": True}))
    with pytest.raises(ModelLoadError, match=r"pooling cls \+ mean is not supported"):
        Encoder.from_pretrained(tmp_path / "m")


@pytest.mark.parametrize("budget", [0, -1, 1.5, "100", True])
def test_a_batch_budget_that_is_not_a_positive_whole_number_is_refused(minilm, budget):
    # 0 used to mean the default silently, -1 and 1.5 one text a batch, "100" a TypeError from inside.
    with pytest.raises(InputError, match=r"batch_tokens=.* is not a positive whole number of tokens"):
        minilm.encode(["a text", "another"], batch_tokens=budget)


def test_a_batch_budget_may_be_a_numpy_integer(minilm):
    assert minilm.encode(["a text", "another"], batch_tokens=np.int64(16)).shape == (2, 384)


def test_loading_leaves_transformers_progress_bars_as_the_caller_set_them(minilm_path):
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        Encoder.from_pretrained(minilm_path)
        assert not hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.enable_progress_bar()
    Encoder.from_pretrained(minilm_path)
    assert hf_logging.is_progress_bar_enabled()


@pytest.mark.parametrize("verb", ["tokenize", "count_tokens"])
def test_bad_texts_are_named_by_the_call_that_got_them(minilm, verb):
    call = getattr(minilm, verb)
    with pytest.raises(InputError, match=rf"no texts to {verb.replace('_', ' ')}: the list is empty"):
        call([])
    with pytest.raises(InputError, match=rf"^{verb}\(\) takes a list of texts"):
        call("a bare string")


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("gpu", r"device 'gpu' is not a device: use auto, cpu, cuda or cuda:N"),
        ("cuda:99", r"device 'cuda:99': this machine has (no CUDA GPU|\d+ CUDA GPU\(s\))"),
    ],
)
def test_a_device_this_machine_does_not_have_is_an_input_error_naming_it(minilm_path, device, message):
    # torch's own errors were an AssertionError ('Torch not compiled with CUDA enabled') or a RuntimeError
    # listing every device type torch knows, raised past callers that catch RagkitError.
    with pytest.raises(InputError, match=message):
        Encoder.from_pretrained(minilm_path, device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_on_a_machine_without_a_gpu_is_an_input_error(minilm_path):
    with pytest.raises(InputError, match=r"device 'cuda': this machine has no CUDA GPU.*use auto or cpu"):
        Encoder.from_pretrained(minilm_path, device="cuda")


def test_a_text_that_is_not_valid_unicode_is_named_by_every_call(minilm):
    # JSON's "\ud800" decodes to a lone surrogate: the tokenizer raised a TypeError about TextEncodeInput.
    broken = json.loads('"caf\\ud800e"')
    for call in (minilm.encode, minilm.tokenize, minilm.count_tokens, minilm.token_counter):
        with pytest.raises(
            InputError, match=r"text #1 is not valid Unicode: .*lone surrogate \(U\+D800\) at character 3"
        ):
            call(["fine", broken])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: c.pop("intermediate_size"),
            r"config\.json: intermediate_size missing or not a positive integer",
        ),
        (
            lambda c: c.update(rope_scaling={"type": "ntk"}),
            r"rope_scaling .* \(only fixed NTK with a positive factor\)",
        ),
        (
            lambda c: c["rope_scaling"].update(factor=0),
            r"rope_scaling .* \(only fixed NTK with a positive factor\)",
        ),
    ],
    ids=["no-intermediate-size", "ntk-without-factor", "ntk-factor-zero"],
)
def test_an_original_config_missing_what_the_translation_needs_is_a_load_error(
    tiny_gte, tmp_path, change, message
):
    # These were a bare KeyError ('intermediate_size', 'factor'), and factor 0 loaded (RoPE base 0).
    shutil.copytree(tiny_gte, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    change(config)
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=message):
        Encoder.from_pretrained(tmp_path / "m")


def test_a_config_json_that_is_not_an_object_is_a_load_error(tiny_gte, tmp_path):
    shutil.copytree(tiny_gte, tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("[]")
    with pytest.raises(ModelLoadError, match=r"config\.json is not a model config"):
        Encoder.from_pretrained(tmp_path / "m")


@pytest.mark.parametrize("max_length", [100.0, "100"])
def test_max_length_must_be_a_whole_number(minilm_path, max_length):
    # 100.0 loaded, then truncate=True failed with 'slice indices must be integers'; "100" a TypeError.
    with pytest.raises(InputError, match=r"max_length=.* is not a whole number of tokens"):
        Encoder.from_pretrained(minilm_path, max_length=max_length)


def test_a_failed_encode_counts_nothing_and_leaves_no_progress_bar_open(tiny_gte, tmp_path):
    from tqdm import tqdm

    def huge_embeddings(weights):
        weights["embeddings.word_embeddings.weight"].mul_(1e38).clamp_(-3e38, 3e38)

    encoder = Encoder.from_pretrained(_damage(tiny_gte, tmp_path / "m", huge_embeddings), max_length=16)
    with pytest.raises(RagkitError, match="NaN or infinite") as failure:
        encoder.encode([prose(40, seed=1)], truncate=True, show_progress=True)
    assert encoder.stats.truncated_texts == encoder.stats.texts == 0  # nothing was embedded, nothing cut
    # The traceback is kept (as an interactive session keeps sys.last_traceback), and the bar is closed.
    assert failure.traceback and not [bar for bar in tqdm._instances if bar.desc == "embedding"]

"""Ingestion jobs end to end: real parsing, the packaged MiniLM, a real embedded Qdrant."""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

import ragkit
from ingest import discover, isolation, pipeline
from ingest.worker import start_parsing_process
from ragkit.cli import main as cli
from ragkit.store import Store
from tests import hostile

TOPICS = {
    "tomatoes": "Tomatoes need six hours of sun. Water them deeply twice a week and prune the side shoots.",
    "engines": "A diesel engine ignites fuel by compression. Turbochargers push more air into the cylinders.",
    "violins": "A violin has four strings tuned in fifths. The bow is strung with horsehair and rosin.",
}


def write_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "garden.md").write_text(
        "# Garden guide\n\n## Tomatoes\n\n" + TOPICS["tomatoes"] + "\n\n## Roses\n\nRoses like rich soil.\n"
    )
    (folder / "engines.txt").write_text("Engines\n\n" + TOPICS["engines"] + "\n")
    (folder / "music.html").write_text(
        "<html><head><title>Music</title></head><body><h1>Strings</h1><p>"
        + TOPICS["violins"]
        + "</p></body></html>"
    )
    return folder


def points(store: Path, collection: str) -> dict[str, tuple[str, str]]:
    """id -> (doc_hash, text) of every point, read back from the closed store."""
    with Store.open(path=store) as opened:
        return {
            pid: (p["doc_hash"], p["text"])
            for pid, p in opened.scroll_payloads(collection, ["doc_hash", "text"])
        }


def ingest(store: Path, *paths: Path, **options) -> ragkit.Kit:
    with ragkit.open("docs", store=store, model="minilm") as kit:
        return kit.ingest(list(paths), workers=0, **options)


def test_a_folder_becomes_whole_sections_with_breadcrumbs(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    (corpus / "notes.xyz").write_text("not a supported type")
    report = ingest(tmp_path / "store", corpus)
    assert report.ok and report.documents_seen == 4 and report.documents_ingested == 3
    assert report.documents_skipped == [
        {"path": str(corpus / "notes.xyz"), "reason": "unsupported file type '.xyz'"}
    ]
    assert report.sections_embedded >= 3 and report.tokens_embedded > 0
    with ragkit.open("docs", store=tmp_path / "store") as kit:  # the recorded model is used
        hit = kit.search("how often should I water tomato plants", top_k=1)[0]
        assert hit.metadata["source"] == str(corpus / "garden.md")
        assert hit.metadata["breadcrumb"][0] == "Garden guide" and "Tomatoes" in hit.text
        assert hit.metadata["section_count"] >= 1 and hit.metadata["doc_hash"]


def test_rerun_over_unchanged_files_embeds_nothing(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    first = ingest(tmp_path / "store", corpus)
    before = points(tmp_path / "store", "docs")
    again = ingest(tmp_path / "store", corpus)
    assert again.documents_unchanged == first.documents_ingested == 3
    assert again.sections_embedded == 0 and again.tokens_embedded == 0
    assert points(tmp_path / "store", "docs") == before


def test_a_new_pipeline_version_re_ingests_unchanged_files(tmp_path, monkeypatch):
    """Parsing that changes what a file turns into bumps PIPELINE_VERSION, so a collection built by the
    old parser is rebuilt rather than left different from a clean run."""
    corpus = write_corpus(tmp_path / "corpus")
    ingest(tmp_path / "store", corpus)
    monkeypatch.setattr(discover, "PIPELINE_VERSION", discover.PIPELINE_VERSION + 1)
    again = ingest(tmp_path / "store", corpus)
    assert again.documents_ingested == 3 and again.documents_unchanged == 0


def test_changed_file_is_replaced_and_deleted_file_pruned(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    ingest(tmp_path / "store", corpus)
    (corpus / "garden.md").write_text("# Garden guide\n\n## Lawns\n\nMow the lawn weekly in summer.\n")
    (corpus / "engines.txt").unlink()
    before = points(tmp_path / "store", "docs")
    report = ingest(tmp_path / "store", corpus, prune=True)
    assert report.documents_ingested == 1 and report.documents_unchanged == 1
    # Each deleted point counted once: garden.md's stale sections and engines.txt's pruned one.
    after = points(tmp_path / "store", "docs")
    assert report.documents_deleted == 1 and report.sections_deleted == len(before.keys() - after.keys()) >= 2
    texts = " ".join(text for _, text in points(tmp_path / "store", "docs").values())
    assert "Mow the lawn" in texts
    assert "Tomatoes" not in texts and "diesel" not in texts


def test_a_changed_file_that_now_fails_loses_its_old_points_as_a_clean_run_has_none(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    ingest(tmp_path / "store", corpus)
    before = points(tmp_path / "store", "docs")
    garden = corpus / "garden.md"
    garden.write_text("   \n")  # changed, and now without text: it fails on every run from here on
    report = ingest(tmp_path / "store", corpus)
    ingest(tmp_path / "clean", corpus)
    assert points(tmp_path / "store", "docs") == points(tmp_path / "clean", "docs")
    removed = len(before) - len(points(tmp_path / "store", "docs"))
    assert removed == report.sections_deleted == 1  # garden.md was one section
    [failure] = report.documents_failed
    assert failure["path"] == str(garden) and "no extractable text" in failure["error"]
    assert failure["error"].endswith(f"; its previous version was removed ({removed} section)")


def test_prune_only_touches_the_given_roots(tmp_path):
    a, b = write_corpus(tmp_path / "a"), write_corpus(tmp_path / "b")
    ingest(tmp_path / "store", a, b)
    report = ingest(tmp_path / "store", a, prune=True)
    assert report.documents_deleted == 0 and report.documents_unchanged == 3


PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2  # <linux/prctl.h>, <linux/capability.h>


def obey_file_permissions() -> None:
    """For a child process of root: drop the two capabilities that let root list any folder, so that it
    meets permissions as any other user does (its next program starts without them); a no-op otherwise."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_cli(*args: str | Path) -> subprocess.CompletedProcess:
    """`ragkit ARGS` as a process that obeys file permissions, even when the tests run as root."""
    command = [sys.executable, "-m", "ragkit.cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, preexec_fn=obey_file_permissions)


@contextmanager
def unreadable(*folders: Path) -> Iterator[None]:
    """The folders without permissions (mode 000) for `run_cli`'s processes; restored afterwards. The
    test is skipped, saying why, where such a process can still list them."""
    for folder in folders:
        folder.chmod(0)
    try:
        probe = subprocess.run(
            [sys.executable, "-c", f"import os; os.listdir({str(folders[0])!r})"],
            capture_output=True,
            preexec_fn=obey_file_permissions,
        )
        if probe.returncode == 0:
            pytest.skip(reason=f"a process here can list {folders[0]} even with mode 000")
        yield
    finally:
        for folder in folders:
            folder.chmod(0o755)


def test_a_folder_that_cannot_be_listed_fails_and_prune_keeps_its_documents(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    inner = corpus / "private"  # a sub-folder of a root
    inner.mkdir()
    (inner / "roses.md").write_text("# Roses\n\nPrune roses in early spring, above an outward bud.\n")
    other = write_corpus(tmp_path / "other")  # a root of its own
    ingest(tmp_path / "store", corpus, other)
    before = points(tmp_path / "store", "docs")

    job = ["ingest", corpus, other, "--prune", "--collection", "docs", "--store", tmp_path / "store"]
    with unreadable(inner, other):
        run = run_cli(*job, "--model", "minilm", "--workers", "0", "--report", tmp_path / "report.json")
    assert run.returncode == 1, run.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["documents_failed"] == [
        {"path": str(folder), "error": f"{folder}: cannot list the folder: Permission denied"}
        for folder in (inner, other)
    ]
    assert f"failed: {inner}: cannot list the folder: Permission denied" in run.stderr
    assert report["documents_unchanged"] == 3 and report["documents_deleted"] == 0
    assert points(tmp_path / "store", "docs") == before


def test_links_to_folders_and_entries_that_are_not_files_are_reported_not_dropped(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    write_corpus(corpus / "shared")
    ingest(tmp_path / "store", corpus)
    before = points(tmp_path / "store", "docs")
    # The sub-folder moves elsewhere and a link takes its place: its documents are still at their paths.
    (corpus / "shared").rename(tmp_path / "elsewhere")
    (corpus / "shared").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    os.mkfifo(corpus / "queue.md")
    (corpus / "old.md").symlink_to(tmp_path / "deleted.md")
    os.mkfifo(tmp_path / "inbox")  # named as a root

    report = ingest(tmp_path / "store", corpus, tmp_path / "inbox", prune=True)
    assert report.documents_failed == [
        {
            "path": str(tmp_path / "inbox"),
            "error": f"{tmp_path / 'inbox'}: not a regular file or a folder (a FIFO)",
        }
    ]
    assert report.documents_skipped == [
        {"path": str(corpus / "old.md"), "reason": "a broken symbolic link"},
        {"path": str(corpus / "queue.md"), "reason": "not a regular file (a FIFO)"},
        {
            "path": str(corpus / "shared"),
            "reason": "a link to a folder, not followed: name it as a path of its own",
        },
    ]
    assert report.documents_seen == 3 + 4 and report.documents_unchanged == 3
    assert report.documents_deleted == 0 and points(tmp_path / "store", "docs") == before


def test_prune_keeps_the_documents_of_a_missing_root(tmp_path):
    corpus, share = write_corpus(tmp_path / "corpus"), write_corpus(tmp_path / "share")
    ingest(tmp_path / "store", corpus, share)
    before = points(tmp_path / "store", "docs")
    share.rename(tmp_path / "unmounted")  # as a network share that is not mounted today
    report = ingest(tmp_path / "store", corpus, share, prune=True)
    assert report.documents_failed == [{"path": str(share), "error": f"{share}: no such file or directory"}]
    assert report.documents_unchanged == 3 and report.documents_deleted == 0
    assert points(tmp_path / "store", "docs") == before


def test_a_file_whose_name_is_not_utf8_fails_alone_and_the_job_goes_on(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    latin1 = os.fsencode(corpus) + b"/caf\xe9.md"  # as unpacked from an old archive
    with open(latin1, "w") as file:
        file.write("# Caf\u00e9\n\nEspresso and croissants.\n")
    name = Path(os.fsdecode(latin1))
    report = ingest(tmp_path / "store", corpus, report=tmp_path / "report.json")
    assert report.documents_seen == 4 and report.documents_ingested == 3
    assert report.documents_failed == [{"path": str(name), "error": f"{name}: {discover.NOT_UTF8}"}]
    written = json.loads((tmp_path / "report.json").read_text())
    assert written["documents_failed"] == report.documents_failed


def test_hidden_files_are_left_out_of_folders_but_not_when_named(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    (corpus / ".drafts").mkdir()
    (corpus / ".drafts" / "draft.md").write_text("# Draft\n\nNot ready to be searched.\n")
    notes = corpus / ".notes.md"
    notes.write_text("# Notes\n\nBring the violin to the workshop on Friday.\n")
    assert ingest(tmp_path / "store", corpus).documents_seen == 3  # neither hidden entry
    report = ingest(tmp_path / "store", notes)
    assert report.ok and report.documents_seen == report.documents_ingested == 1
    with ragkit.open("docs", store=tmp_path / "store") as kit:
        assert kit.search("workshop on Friday", top_k=1)[0].metadata["source"] == str(notes)


def test_prune_keeps_a_hidden_file_that_was_named_while_it_is_there(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    notes = corpus / ".notes.md"
    notes.write_text("# Notes\n\nBring the violin to the workshop on Friday.\n")
    ingest(tmp_path / "store", corpus, notes)
    before = points(tmp_path / "store", "docs")
    report = ingest(tmp_path / "store", corpus, prune=True)  # the folder alone leaves .notes.md out
    assert report.documents_deleted == 0 and points(tmp_path / "store", "docs") == before
    notes.unlink()
    assert ingest(tmp_path / "store", corpus, prune=True).documents_deleted == 1


def test_a_job_counts_the_breadcrumbs_it_shortened(tmp_path):
    """A heading longer than half of MiniLM's 256 tokens: its section is ingested, and the report says
    how many sections carry a shortened breadcrumb."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    heading = " ".join(f"word{i}" for i in range(150))
    (corpus / "manual.md").write_text(f"# Install\n\nRun the installer.\n\n## {heading}\n\nThen reboot.\n")
    report = ingest(tmp_path / "store", corpus)
    assert report.ok and report.documents_ingested == 1
    assert report.breadcrumbs_shortened >= 1
    assert f"{report.breadcrumbs_shortened} breadcrumbs shortened" in report.summary()
    assert ingest(tmp_path / "store2", write_corpus(tmp_path / "plain")).breadcrumbs_shortened == 0


def test_tokens_embedded_counts_the_jobs_own_tokens_while_the_encoder_embeds_for_others(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    alone = ingest(tmp_path / "alone", corpus).tokens_embedded
    with ragkit.open("docs", store=tmp_path / "store", model="minilm") as kit:
        kit.encoder.encode(["warm"])
        stop = threading.Event()

        def queries() -> None:  # a notebook's searches, from another thread, through the same encoder
            while not stop.is_set():
                kit.encoder.encode(["how often should I water tomato plants"])

        others = threading.Thread(target=queries)
        others.start()
        try:
            report = kit.ingest([corpus], workers=0)
        finally:
            stop.set()
            others.join()
    assert report.tokens_embedded == alone > 0


def test_long_file_is_split_under_the_token_limit_without_losing_text(tmp_path):
    paragraphs = [
        f"Paragraph {i} talks about topic number {i} at some length, word after word." for i in range(120)
    ]
    (tmp_path / "long.md").write_text("# Long\n\n## Part\n\n" + "\n\n".join(paragraphs) + "\n")
    report = ingest(tmp_path / "store", tmp_path / "long.md", max_tokens=128)
    assert report.ok and report.sections_embedded > 5
    with ragkit.open("docs", store=tmp_path / "store") as kit:
        counts = kit.encoder.count_tokens
        stored = sorted(
            (
                p
                for _, p in kit.store.scroll_payloads(
                    "docs", ["text", "tokens", "breadcrumb", "section_index"]
                )
            ),
            key=lambda p: p["section_index"],
        )
    assert all(p["tokens"] <= 128 for p in stored)
    assert all(n <= 128 for n in counts([" > ".join(p["breadcrumb"]) + "\n\n" + p["text"] for p in stored]))
    joined = " ".join(p["text"] for p in stored)
    assert all(paragraph in joined for paragraph in paragraphs)


def test_bad_documents_are_reported_and_the_job_goes_on(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    (corpus / "empty.txt").write_text("")
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog")
    (corpus / "garbage.txt").write_bytes(os.urandom(4096))
    report = ingest(tmp_path / "store", corpus, report=tmp_path / "report.json")
    assert report.documents_ingested == 3 and not report.ok
    failed = {Path(f["path"]).name: f["error"] for f in report.documents_failed}
    assert set(failed) == {"empty.txt", "broken.pdf", "garbage.txt"}
    assert "no extractable text" in failed["empty.txt"]
    written = json.loads((tmp_path / "report.json").read_text())
    for key in (
        "documents_seen", "documents_ingested", "documents_unchanged", "documents_failed",
        "documents_skipped", "sections_embedded", "sections_deleted", "tokens_embedded", "seconds",
    ):  # fmt: skip
        assert key in written
    assert len(written["documents_failed"]) == 3


def test_failures_are_reported_in_path_order_not_in_the_order_parsing_ends(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    (corpus / "a-slow.pdf").write_bytes(hostile.pdf_many_pages(20_000))  # fails at the time limit
    (corpus / "b-empty.txt").write_text("")  # fails at once, beside it
    with ragkit.open("docs", store=tmp_path / "store", model="minilm") as kit:
        report = kit.ingest([corpus], workers=2, parse_timeout=2)
    assert [Path(f["path"]).name for f in report.documents_failed] == ["a-slow.pdf", "b-empty.txt"]


def test_every_failure_in_the_report_names_its_document_once(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    (corpus / "fake.pdf").write_bytes(b"not a pdf")  # the parser's error names the file itself
    gone = tmp_path / "gone.md"  # discovery's does not
    report = ingest(tmp_path / "store", corpus, gone)
    errors = {Path(f["path"]).name: f["error"] for f in report.documents_failed}
    assert errors["gone.md"] == f"{gone}: no such file or directory"
    fake = str(corpus / "fake.pdf")
    assert errors["fake.pdf"].startswith(f"{fake}: ") and errors["fake.pdf"].count(fake) == 1


def test_cli_exit_codes_and_report(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus")
    args = ["ingest", str(corpus), "--collection", "c", "--store", str(tmp_path / "s"), "--model", "minilm"]
    assert cli([*args, "--workers", "0", "--report", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["documents_ingested"] == 3
    (corpus / "empty.md").write_text("   \n")
    (corpus / "fake.pdf").write_bytes(b"not a pdf")
    assert cli([*args, "--workers", "0"]) == 1
    failures = [line for line in capsys.readouterr().err.splitlines() if line.startswith("failed: ")]
    assert len(failures) == 2
    for name in ("empty.md", "fake.pdf"):  # each named once, whether or not its error names it too
        assert sum(line.count(str(corpus / name)) for line in failures) == 1


def test_a_number_of_workers_that_is_not_a_count_or_far_past_the_cores_is_refused_before_the_job_starts(
    tmp_path, capsys
):
    corpus = write_corpus(tmp_path / "corpus")
    with ragkit.open("docs", store=tmp_path / "s", model="minilm") as kit:
        for workers in (-1, 1.5, "2", True):
            with pytest.raises(ragkit.InputError, match=re.escape(f"workers={workers!r} must be")):
                kit.ingest([corpus], workers=workers)
        most = 4 * (os.cpu_count() or 1)
        with pytest.raises(
            ragkit.InputError, match=re.escape(f"workers={most + 1} is more parsing processes")
        ):
            kit.ingest([corpus], workers=most + 1)  # each would hold its own parsers: memory, no speed
        for workers in (0, 1.5, True):  # on Ray, parsing tasks at once, of which 0 would be none
            with pytest.raises(ragkit.InputError, match=re.escape(f"workers={workers!r}: on Ray")):
                kit.ingest([corpus], workers=workers, ray=True)
        assert kit.store.collections() == []
    args = ["ingest", str(corpus), "--store", str(tmp_path / "s"), "--model", "minilm", "--workers", "-1"]
    with pytest.raises(SystemExit) as refused:
        cli(args)
    assert refused.value.code == 2 and "'-1' is not a number of processes >= 0" in capsys.readouterr().err


def test_a_metadata_key_given_twice_with_two_values_is_refused(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus")
    args = ["ingest", str(corpus), "--store", str(tmp_path / "s"), "--model", "minilm", "--workers", "0"]
    assert cli([*args, "--metadata", "team=docs", "--metadata", "team=ops"]) == 2
    assert "--metadata 'team' is given twice, as 'docs' and 'ops'" in capsys.readouterr().err
    with Store.open(path=tmp_path / "s") as store:
        assert store.collections() == []


def test_a_report_that_cannot_be_written_is_refused_before_the_job_starts(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus")
    report = tmp_path / "no-such-folder" / "report.json"
    args = ["ingest", str(corpus), "--collection", "c", "--store", str(tmp_path / "s"), "--model", "minilm"]
    assert cli([*args, "--workers", "0", "--report", str(report)]) == 2
    error = capsys.readouterr().err
    assert f"ragkit: error: cannot write the report to {report}: No such file or directory" in error
    assert "Traceback" not in error
    with pytest.raises(ragkit.InputError, match=f"cannot write the report to {tmp_path}: Is a directory"):
        ingest(tmp_path / "s", corpus, report=tmp_path)
    with Store.open(path=tmp_path / "s") as store:
        assert store.collections() == []  # neither job did anything


def overflowing_checkpoint(tiny_gte: Path, folder: Path) -> Path:
    """The tiny gte with finite weights whose activations overflow float32: it loads, and every call to
    encode fails (as half precision can overflow on a GPU)."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(tiny_gte, folder)
    weights = load_file(tiny_gte / "model.safetensors")
    weights["embeddings.word_embeddings.weight"].mul_(1e38).clamp_(-3e38, 3e38)
    save_file(weights, folder / "model.safetensors")
    return folder


def parsing_processes() -> set[int]:
    """This process's parsing children, but those kept idle for its next job."""
    kept = {child.process.pid for child in isolation._Idle.children}
    return {p.pid for p in psutil.Process().children() if "ingest.worker" in " ".join(p.cmdline())} - kept


def test_a_job_stopped_by_an_error_ends_its_parsing_processes_while_the_error_is_kept(
    tmp_path, tiny_gte_dir, monkeypatch
):
    monkeypatch.setattr(pipeline, "EMBED_FLUSH_TOKENS", 1)  # embed after the first document: parsing goes on
    corpus = tmp_path / "corpus"
    for i in range(12):
        write_corpus(corpus / f"part{i}")
    kit = ragkit.open(
        "docs", store=tmp_path / "store", model=str(overflowing_checkpoint(tiny_gte_dir, tmp_path / "m"))
    )
    with kit, pytest.raises(ragkit.RagkitError, match="produced NaN or infinite values") as stopped:
        kit.ingest([corpus], workers=2)
    assert stopped.value.__traceback__ is not None  # kept, as a notebook keeps the last error
    assert parsing_processes() == set()


def test_worker_processes_give_the_same_points_as_in_process_parsing(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    ingest(tmp_path / "inline", corpus)
    with ragkit.open("docs", store=tmp_path / "pool", model="minilm") as kit:
        kit.ingest([corpus], workers=2)
    assert points(tmp_path / "pool", "docs") == points(tmp_path / "inline", "docs")


def _parse_in_worker(path: Path) -> tuple[str, bool]:
    """Run inside a parsing worker: the document's title, and whether torch got loaded."""
    from ingest.parse import parse

    return parse(path).title, sys.modules.get("torch") is not None


def test_parsing_workers_start_without_torch_and_still_parse(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, spawn, initializer=start_parsing_process) as pool:
        title, torch_loaded = pool.submit(_parse_in_worker, corpus / "garden.md").result()
    assert title == "Garden guide" and not torch_loaded


def test_model_mismatch_is_a_clear_error(tmp_path, tiny_gte_dir):
    corpus = write_corpus(tmp_path / "corpus")
    ingest(tmp_path / "store", corpus)
    kit = ragkit.open("docs", store=tmp_path / "store", model=str(tiny_gte_dir))
    with kit, pytest.raises(ragkit.ModelMismatchError, match="all-MiniLM-L6-v2"):
        kit.ingest([corpus], workers=0)


def test_a_max_tokens_that_is_not_a_whole_number_is_refused_before_the_job_starts(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    with ragkit.open("docs", store=tmp_path / "store", model="minilm") as kit:
        for max_tokens in (100.0, 100.5, "100"):  # 100.0 would re-ingest a collection made with 100
            with pytest.raises(ragkit.InputError, match=re.escape(f"max_tokens={max_tokens!r} must be")):
                kit.ingest([corpus], workers=0, max_tokens=max_tokens)
        assert kit.store.collections() == []


def test_reserved_metadata_keys_are_refused(tmp_path):
    with pytest.raises(ragkit.InputError, match="reserved"):
        ingest(tmp_path / "store", write_corpus(tmp_path / "corpus"), metadata={"source": "x"})


def test_a_store_held_by_another_process_is_a_clear_cli_error(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus")
    with ragkit.open("docs", store=tmp_path / "store", model="minilm"):
        code = subprocess.run(
            [sys.executable, "-m", "ragkit.cli", "ingest", str(corpus), "--store", str(tmp_path / "store")],
            capture_output=True,
            text=True,
            env=os.environ | {"RAGKIT_MODEL": "minilm"},
        )
    assert code.returncode == 2
    assert str(tmp_path / "store") in code.stderr and "another" in code.stderr


def test_a_script_read_from_stdin_still_gets_parsing_processes(tmp_path):
    # multiprocessing's spawn cannot re-import a script read from stdin; parsing children never need to.
    corpus = write_corpus(tmp_path / "corpus")
    script = (
        "import ragkit\n"
        f"with ragkit.open('docs', store={str(tmp_path / 'store')!r}, model='minilm') as kit:\n"
        f"    print(kit.ingest([{str(corpus)!r}], workers=2).documents_ingested)\n"
    )
    run = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "3"

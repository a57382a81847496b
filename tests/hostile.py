"""Hostile documents for the fuzzing tests and `bench/fuzz.py`: real files of every supported format,
then mutated (bit flips, truncations, splices, zero runs) or built to hurt (zip bombs, an enormous
line, deep nesting, broken, cyclic and endless PDFs). Every generator is seeded: same seed, same files.
"""

from __future__ import annotations

import csv
import io
import random
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import docx
import pptx

from ingest.parse import SUPPORTED_SUFFIXES

PROSE = (
    "Tomatoes need deep watering twice a week. Prune the side shoots so the plant puts its strength "
    "into fruit. Stake the stems before they bend under the weight of the trusses."
)

# ------------------------------------------------------------------------------------ seeds ----


def pdf_bytes(pages: list[str], *, count: int | None = None, kids: bytes | None = None) -> bytes:
    """A real PDF, one Helvetica line per page. `count` overrides the page tree's /Count and `kids`
    its /Kids, to build lying or cyclic page trees."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    page_ids = []
    for text in pages:
        stream = b"BT /F1 12 Tf 72 700 Td (%s) Tj ET" % text.encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 3 0 R >> >> >>" % (len(objects))
        )
        page_ids.append(len(objects))
    kid_refs = kids if kids is not None else b" ".join(b"%d 0 R" % k for k in page_ids)
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        kid_refs,
        count if count is not None else len(pages),
    )
    return pdf_file(objects)


def pdf_file(objects: list[bytes], trailer: bytes = b"") -> bytes:
    """Objects numbered from 1 (the catalog) with a correct xref table; `trailer` adds entries such as
    `/Info 9 0 R`."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        trailer,
        xref,
    )
    return bytes(out)


def _docx() -> bytes:
    document = docx.Document()
    document.core_properties.title = "Garden guide"
    document.add_heading("Tomatoes", 1)
    document.add_paragraph(PROSE)
    document.add_heading("Beans", 2)
    document.add_paragraph("Beans climb; give them a frame.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _pptx() -> bytes:
    deck = pptx.Presentation()
    for title, body in (("Tomatoes", PROSE), ("Beans", "Beans climb; give them a frame.")):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()


def _eml() -> bytes:
    message = EmailMessage()
    message["Subject"] = "Garden guide"
    message["From"] = "a@example.com"
    message["To"] = "b@example.com"
    message.set_content(PROSE)
    return bytes(message)


def _delimited(delimiter: str) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerows(
        [["plant", "water", "notes"], ["tomato", "twice a week", "stake"], ["bean", "weekly", "frame"]]
    )
    return buffer.getvalue().encode()


_HTML = f"<html><head><title>Garden</title></head><body><h1>Tomatoes</h1><p>{PROSE}</p></body></html>"
SEEDS: dict[str, Callable[[], bytes]] = {
    ".txt": lambda: f"Garden guide\n\n{PROSE}\n".encode(),
    ".text": lambda: f"Garden guide\n\n{PROSE}\n".encode(),
    ".md": lambda: f"# Garden guide\n\n## Tomatoes\n\n{PROSE}\n\n- stake\n- prune\n".encode(),
    ".markdown": lambda: f"# Garden guide\n\n{PROSE}\n".encode(),
    ".html": _HTML.encode,
    ".htm": _HTML.encode,
    ".pdf": lambda: pdf_bytes(["Garden guide", PROSE[:80]]),
    ".docx": _docx,
    ".pptx": _pptx,
    ".eml": _eml,
    ".csv": lambda: _delimited(","),
    ".tsv": lambda: _delimited("\t"),
}
assert set(SEEDS) == SUPPORTED_SUFFIXES, "every supported format needs a seed document"

# -------------------------------------------------------------------------------- mutations ----


def bit_flips(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 16)):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def truncation(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data))]


def zero_run(data: bytes, rng: random.Random) -> bytes:
    start = rng.randrange(len(data))
    length = rng.randint(1, max(1, len(data) // 4))
    return data[:start] + bytes(length) + data[start + length :]


def splice(data: bytes, rng: random.Random, other: bytes) -> bytes:
    return data[: rng.randrange(len(data))] + other[rng.randrange(len(other)) :]


MUTATIONS = ("bit_flips", "truncation", "zero_run", "splice")

# ----------------------------------------------------------------------- built to hurt ----


def zip_bomb(package: bytes, member: str, inflated_bytes: int) -> bytes:
    """The Office package with `member` replaced by one that inflates to `inflated_bytes` of "a"."""
    source = zipfile.ZipFile(io.BytesIO(package))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            if info.filename != member:
                target.writestr(info, source.read(info))
                continue
            head, _, tail = source.read(info).partition(
                b"</w:body>" if member.startswith("word/") else b"</p:sld>"
            )
            with target.open(member, "w", force_zip64=True) as stream:
                stream.write(head)
                block = b"a" * 2**20
                for _ in range(inflated_bytes // len(block)):
                    stream.write(block)
                stream.write(b"</w:body>" + tail if member.startswith("word/") else b"</p:sld>" + tail)
    return out.getvalue()


def understate_member(package: bytes, member: str, declared: int) -> bytes:
    """The package with `member`'s uncompressed size, in both of its headers, changed to `declared`."""
    source = zipfile.ZipFile(io.BytesIO(package))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info))
    data = bytearray(out.getvalue())
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo(member)
    struct.pack_into("<I", data, info.header_offset + 22, declared)  # local file header
    central = data.index(b"PK\x01\x02")
    while data[central + 46 : central + 46 + len(member)] != member.encode():
        central = data.index(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", data, central + 24, declared)  # central directory entry
    return bytes(data)


def enormous_line(megabytes: float) -> bytes:
    """Words on one line, no sentence ends: what sectioning once spent minutes and gigabytes on."""
    words = [
        "time",
        "year",
        "work",
        "life",
        "hand",
        "part",
        "case",
        "week",
        "fact",
        "area",
        "home",
        "room",
        "city",
        "book",
        "word",
        "game",
    ]
    count = int(megabytes * 2**20 / 5)
    return " ".join(words[(i * 7) % len(words)] for i in range(count)).encode()


def deep_html(depth: int, text: str = "The treasure is buried under the old oak tree.") -> bytes:
    return (
        "<html><body>" + "<div>" * depth + f"<p>{text}</p>" + "</div>" * depth + "</body></html>"
    ).encode()


def pdf_broken_xref() -> bytes:
    data = pdf_bytes(["Garden guide", PROSE[:80]])
    start = data.index(b"xref\n")
    return data[:start] + b"xref\n0 9\n" + b"9999999999 00000 n \n" * 9 + data[data.index(b"trailer") :]


def pdf_cyclic() -> bytes:
    """A page tree whose only kid is the tree itself."""
    return pdf_bytes(["Garden guide"], kids=b"2 0 R")


def pdf_huge_page_count(declared: int = 10**9) -> bytes:
    return pdf_bytes(["Garden guide"], count=declared)


def pdf_many_pages(pages: int) -> bytes:
    return pdf_bytes([f"Page {number}" for number in range(pages)])


def pdf_stream_bomb(inflated_bytes: int) -> bytes:
    """A page whose content stream inflates to `inflated_bytes` of spaces."""
    packed = zlib.compressobj(9)
    body = packed.compress(b"BT /F1 12 Tf 72 700 Td (Bomb) Tj ET\n")
    block = b" " * 2**20
    for _ in range(inflated_bytes // len(block)):
        body += packed.compress(block)
    body += packed.flush()
    data = pdf_bytes(["x"])
    stream = b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(body), body)
    # Rebuild with the compressed stream as object 4 (the first page's contents).
    head, _, rest = data.partition(b"4 0 obj\n")
    _, _, rest = rest.partition(b"\nendobj\n")
    rebuilt = head + b"4 0 obj\n" + stream + b"\nendobj\n" + rest
    return rebuilt[: rebuilt.index(b"xref\n")] + b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"


def built_to_hurt(line_megabytes: float = 0.05) -> Iterator[tuple[str, bytes]]:
    """(file name, content) of each hand-built hostile case, sized to run in seconds (the line's text
    is ingested, so embedded: on a CPU a 10 MB line takes an hour there)."""
    yield "zip-bomb.docx", zip_bomb(_docx(), "word/document.xml", 200 * 2**20)
    yield "zip-bomb.pptx", zip_bomb(_pptx(), "ppt/slides/slide1.xml", 200 * 2**20)
    yield "enormous-line.txt", enormous_line(line_megabytes)
    yield "deep.html", deep_html(50_000)
    yield "broken-xref.pdf", pdf_broken_xref()
    yield "cyclic.pdf", pdf_cyclic()
    yield "huge-page-count.pdf", pdf_huge_page_count()
    yield "stream-bomb.pdf", pdf_stream_bomb(200 * 2**20)


def mutated(count: int, seed: int) -> Iterator[tuple[str, bytes]]:
    """`count` (file name, content) pairs: seeds of every format, each mutated by one mutation."""
    rng = random.Random(seed)
    seeds = {suffix: make() for suffix, make in sorted(SEEDS.items())}
    suffixes = sorted(seeds)
    for index in range(count):
        suffix = suffixes[index % len(suffixes)]
        mutation = MUTATIONS[(index // len(suffixes)) % len(MUTATIONS)]
        data = seeds[suffix]
        if mutation == "splice":
            content = splice(data, rng, seeds[rng.choice(suffixes)])
        else:
            content = globals()[mutation](data, rng)
        yield f"{index:05d}-{mutation}{suffix}", content


def write(folder: Path, files: Iterator[tuple[str, bytes]]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, content in files:
        path = folder / name
        path.write_bytes(content)
        paths.append(path)
    return paths

"""An Edge shard's index, built beside the live shard by a child process, then swapped in.

Edge's `optimize()` holds the GIL for as long as it runs: a 40,000-point build stopped every other thread
of its process for all of its 14 s (`python -m bench.index_build`), so in-process it would freeze every
search, and the HTTP service with them. So does adding a payload index (`create_field_index`): a keyword
or an integer index of 60,000 points stopped every other thread for 0.2-0.8 s each, and that grows with
the points. So the engine flushes the shard, copies it (its writes wait meanwhile, its searches do not),
has a child process optimize the copy or add the payload indexes to it, and swaps the copy in between two
searches.

On disk, beside `shard/`: `shard.next/` is the copy being built, and `shard.old/` the shard being
swapped out. `settle` makes a folder whole again after a crash at any point: a copy is used only once the
child has finished it, which is the only time `shard/` is moved away.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ragkit.python_child import python_command

SHARD = "shard"
NEXT = "shard.next"
OLD = "shard.old"
_CHUNK = 2**20


def copy_shard(source: Path, target: Path) -> None:
    """Copy a flushed shard folder, keeping the holes of its sparse memory-mapped files as holes, so the
    copy fills the disk no more than the shard does.

    Every file and folder of the copy is fsynced: once it is swapped in, the shard it replaces is removed,
    and the child's flush syncs only the files that Edge writes, not those it leaves as copied."""
    shutil.rmtree(target, ignore_errors=True)
    for root, _, files in os.walk(source):
        here = target / Path(root).relative_to(source)
        here.mkdir(parents=True, exist_ok=True)
        for name in files:
            with open(Path(root) / name, "rb") as reading, open(here / name, "wb") as writing:
                while chunk := reading.read(_CHUNK):
                    if chunk.count(0) == len(chunk):
                        writing.seek(len(chunk), os.SEEK_CUR)
                    else:
                        writing.write(chunk)
                writing.truncate()
                os.fsync(writing.fileno())
        sync_dir(here)
    sync_dir(target.parent)


def sync_dir(folder: Path) -> None:
    """Make the names created, renamed or removed in `folder` survive a power loss: on POSIX a rename is
    on disk only once its folder is fsynced. Skipped where a folder cannot be opened for that (Windows)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def optimize_copy(path: Path) -> bool:
    """Build the index of the shard copy at `path` in a child process; True when it changed anything."""
    return _in_child(path, {"optimize": True})


def index_copy(path: Path, indexes: Mapping[str, str]) -> bool:
    """Add payload indexes ({field: kind, as in schema.json}) to the shard copy at `path` in a child
    process; True, as the copy has changed."""
    return _in_child(path, {"indexes": dict(indexes)})


def _in_child(path: Path, task: dict[str, Any]) -> bool:
    """Run `task` (see `main`) on the shard copy at `path` in a child process; True when it changed it."""
    done = subprocess.run(
        python_command(
            "from ragkit.store.rebuild import main; sys.exit(main(sys.argv[1:]))",
            str(path),
            str(os.getpid()),
            json.dumps(task),
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        raise RuntimeError(f"the index build of {path} failed: {detail[0]}")
    return bool(json.loads(done.stdout.strip().splitlines()[-1])["changed"])


def swap_in(collection: Path) -> None:
    """Replace `shard/` with the finished `shard.next/` (both closed), leaving the old one in `shard.old/`:
    searches wait for the swap, so removing it (0.2 s of a 60,000-point shard) is left to `settle`, after."""
    (collection / SHARD).rename(collection / OLD)
    (collection / NEXT).rename(collection / SHARD)
    sync_dir(collection)


def settle(collection: Path) -> None:
    """Finish or undo a rebuild that a crash interrupted, or clear what a finished one left, so that
    `shard/` is the collection's shard and nothing else is beside it."""
    shard, finished, old = collection / SHARD, collection / NEXT, collection / OLD
    if not shard.exists() and (finished.exists() or old.exists()):
        # shard/ moves away only once the copy is finished: use that, else put the old one back.
        (finished if finished.exists() else old).rename(shard)
        sync_dir(collection)
    shutil.rmtree(finished, ignore_errors=True)  # a copy that was never finished
    shutil.rmtree(old, ignore_errors=True)


def die_with(parent: int) -> None:
    """End this child when `parent` ends. An orphaned build would go on writing a copy that the next
    process to open the collection removes and copies anew under it (`settle`, `copy_shard`). Linux only:
    elsewhere an orphan runs to its end."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # it ended before the line above
        raise SystemExit(f"the process {parent} that started this index build has ended")


def main(argv: list[str]) -> int:
    """The child: load the copy at argv[0], add the task's payload indexes ({"indexes": {field: kind}})
    and build its index ({"optimize": true}), flush, say whether anything changed."""
    die_with(int(argv[1]))
    task = json.loads(argv[2])
    import qdrant_edge as edge

    from ragkit.store.edge import INDEX_TYPES

    shard = edge.EdgeShard.load(argv[0])
    try:
        changed = False
        for field, kind in sorted(task.get("indexes", {}).items()):
            shard.update(edge.UpdateOperation.create_field_index(field, INDEX_TYPES[kind]))
            changed = True
        if task.get("optimize"):
            changed = shard.optimize() or changed
        shard.flush()
    finally:
        shard.close()
    print(json.dumps({"changed": bool(changed)}))
    return 0

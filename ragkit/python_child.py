"""The command line of a Python child process that imports the code its parent is running."""

from __future__ import annotations

import json
import sys


def python_command(code: str, *args: str) -> list[str]:
    """`python -c code args...`, the child searching its parent's `sys.path`, so that it runs the ragkit
    (and ingest) of the process that starts it. A fresh interpreter would find none when ragkit is run from
    a source tree or its editable install has moved, and another copy when one comes first on its path.

    `code` reads `args` as `sys.argv[1:]`, with `json` and `sys` imported."""
    boot = f"import json, sys; sys.path[:] = json.loads(sys.argv.pop(1)); {code}"
    return [sys.executable, "-c", boot, json.dumps(sys.path), *args]

"""Ingestion pipeline: files -> parsed elements -> sections -> vectors -> Qdrant points.

Uses ragkit's encoder and store; ragkit never imports this package at module level.
"""

import os

# unstructured reads these when it is first imported, whichever ingest module gets there first.
for _switch in ("DO_NOT_TRACK", "SCARF_NO_ANALYTICS", "UNSTRUCTURED_DISABLE_NOTICE"):
    os.environ.setdefault(_switch, "true" if _switch != "UNSTRUCTURED_DISABLE_NOTICE" else "1")

"""Ingestion pipeline: files -> parsed elements -> sections -> vectors -> Qdrant points.

Uses ragkit's encoder and store; ragkit never imports this package at module level.
"""

import os

# unstructured pings a telemetry endpoint when first imported and prints a banner on first use; these
# switches must be set before that, whichever ingest module gets there first. An empty value does not
# opt out, so empty ones are filled too; the notice switch must be exactly "1".
for _switch, _value in (
    ("DO_NOT_TRACK", "true"),
    ("SCARF_NO_ANALYTICS", "true"),
    ("UNSTRUCTURED_DISABLE_NOTICE", "1"),
):
    if not os.environ.get(_switch, "").strip():
        os.environ[_switch] = _value

"""Adapters that hand ragkit's hits to RAG frameworks; each module imports only its own (optional) framework."""

"""Ingestion pipeline: files -> parsed elements -> sections -> vectors -> Qdrant points.

Uses ragkit's encoder and store; ragkit never imports this package at module level.
"""

"""Datasets and their immutable versions: upload, import, schema, preview, download."""

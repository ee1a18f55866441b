"""Wire schemas and typed clients of each service (pydantic and the kit's peers only)."""

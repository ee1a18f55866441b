"""Run artifacts: files streamed to and from the object store, listed by path."""

"""Model serving: model-server processes and the local runtime that supervises them."""

"""The model registry: registered models and their versions, aliases, stages and lineage."""

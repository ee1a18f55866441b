"""ModelOps: the model registry (registered models, versions, aliases, stages, lineage)."""

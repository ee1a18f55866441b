"""Builds: a model version packaged as a serving bundle, a container build context and,
with a container builder configured, an image pushed to a registry."""

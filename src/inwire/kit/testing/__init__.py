"""Test support for Inwire services: the pytest plugin and its helpers."""

from inwire.kit.testing.identities import ORGS, ROLES, Identity, identity

__all__ = ["ORGS", "ROLES", "Identity", "identity"]

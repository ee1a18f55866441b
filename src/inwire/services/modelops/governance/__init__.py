"""Governance of ModelOps: approvals, the audit trail and the history of production."""

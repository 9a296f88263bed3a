"""Versions, the deploy pipeline, rollback and verification of released images."""

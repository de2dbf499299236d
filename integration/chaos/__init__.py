"""Chaos: the API server killed mid-operation, the database gone for a while."""

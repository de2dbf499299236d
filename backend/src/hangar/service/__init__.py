"""Service layer: the machine state machine, operations, events, users and tokens.

It owns the database rows; the API calls it, and it is the only caller of providers.
"""

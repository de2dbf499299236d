"""Shards: one test gate's work split into duration-balanced parts (`gates run --shard I/N`),
the results each part leaves in its directory, and their merge (`gates merge DIR…`)."""

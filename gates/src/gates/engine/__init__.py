"""The gate engine: the pipeline as data, how a gate runs, the run itself and its history."""

"""Coverage across the run's gates: where each gate's data lands, the combined figures, and the
ratchet that judges them against the last green commit's (`check = "coverage"`)."""

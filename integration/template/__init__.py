"""The template makes tested copies: `invoke new` (full and --bare) and `invoke template-update`,
end to end, with the copies' own gates."""

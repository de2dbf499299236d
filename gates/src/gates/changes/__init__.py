"""Changes to the project's tree that never lose work: rollback and dependency upgrade."""

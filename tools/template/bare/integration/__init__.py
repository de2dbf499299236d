"""Integration tests against real services (a PostgreSQL server); shared test code lives in the
`testkit` package, never here."""

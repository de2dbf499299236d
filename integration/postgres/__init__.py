"""The service on a throwaway PostgreSQL."""

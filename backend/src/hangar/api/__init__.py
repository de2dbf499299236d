"""HTTP layer: the FastAPI app, its routers, request/response schemas, auth and SSE."""

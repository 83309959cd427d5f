"""API: the FastAPI app, auth, live stream, dashboard page; reads from every stage."""

"""The console\x27s web pages (Starlette, Jinja2), served by uvicorn."""

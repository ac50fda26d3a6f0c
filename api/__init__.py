"""The composition root: settings, the ASGI app, its routes and lifespan, and the `studio` CLI."""

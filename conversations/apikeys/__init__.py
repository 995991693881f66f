"""API keys to the OpenAI-compatible API: made, listed and revoked (`keys`), a request's key turned into
its user and scope (`bearer`), and what a key may use (`offers`). A feature of its own, not a part of
the API's views, because the page's panel, the admin and the management commands make and revoke keys
too, and they may not import a serving room."""

"""A local stand-in for the Dedalus API (chat completions, models, OCR, the MCP key): run by `make run`
without an API key, by the tests and by `bench/`. Production code never imports it; run it with
`python -m standin --port 4010`."""

"""The OpenAI-compatible API under /v1/, for clients built on OpenAI's SDKs: `auth` (a request's key),
`errors` (every failure OpenAI-shaped), `cors` (browser origins the operator allows), `models_list`
(GET /v1/models). The keys themselves are the `apikeys` feature's."""

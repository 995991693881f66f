"""The OpenAI-compatible API under /v1/, for clients built on OpenAI's SDKs: `auth` (a request's key),
`errors` (every failure OpenAI-shaped), `cors` (browser origins the operator allows), `models_list`
(GET /v1/models), `completions` (POST /v1/chat/completions, a turn through the relay) with
`completion_request` (its body), `completion_turn` (the turn it asks for) and `completion_reply` (its
reply in OpenAI's shapes). The keys themselves are the `apikeys` feature's."""

"""HTTP views: the chat page and sign-in, the conversation API, attachments, shares, MCP checks and
credentials, health and metrics, and Django's error answers for the API. Thin: each reads the request,
calls a feature, answers."""

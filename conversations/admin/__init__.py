"""The admin, one module per feature. Django's autodiscovery imports this package; importing the modules
registers their ModelAdmins."""

from . import agents, api_keys, attachments, chat_models, conversations, feedback, mcp, quotas, shares, usage  # noqa: F401

"""The admin, one module per feature. Django's autodiscovery imports this package; importing the modules
registers their ModelAdmins."""

from . import (  # noqa: F401
    accounts,
    agents,
    api_keys,
    attachments,
    budgets,
    chat_models,
    conversations,
    feedback,
    mcp,
    provider_groups,
    quotas,
    shares,
    usage,
)

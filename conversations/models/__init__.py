"""Every table of the app, by what it stores: `catalog` (chat models, agents), `mcp` (presets, a user's
credentials), `conversations` (conversations, messages, feedback, shares), `attachments` (files and their
storage), `usage` (the ledger, daily sums, quotas), `budgets` (caps per group and per user), `api_keys`
(keys to the OpenAI-compatible API), `accounts` (invitations, sign-ups awaiting approval),
`provider_groups` (the group memberships single sign-on gave). One app: the migrations are the same."""

from .accounts import Invite, SignUp
from .api_keys import ApiKey
from .attachments import Attachment, AttachmentQuerySet, attachment_file_discard, attachments_storage
from .budgets import Budget
from .catalog import Agent, AgentQuerySet, ChatModel, ChatModelQuerySet, ModelChoice, OneDefault
from .conversations import Conversation, Feedback, Message, MessageQuerySet, Share
from .mcp import MCPCredential, MCPServerPreset, MCPServerPresetQuerySet
from .provider_groups import ProviderGroupGrant
from .usage import USAGE_SUMS, DailyUsage, DailyUsageQuerySet, UsageEntry, UserQuota

__all__ = [
    "USAGE_SUMS",
    "Agent",
    "ApiKey",
    "AgentQuerySet",
    "Attachment",
    "Budget",
    "AttachmentQuerySet",
    "ChatModel",
    "ChatModelQuerySet",
    "Conversation",
    "DailyUsage",
    "DailyUsageQuerySet",
    "Feedback",
    "Invite",
    "MCPCredential",
    "MCPServerPreset",
    "MCPServerPresetQuerySet",
    "Message",
    "MessageQuerySet",
    "ModelChoice",
    "OneDefault",
    "ProviderGroupGrant",
    "Share",
    "SignUp",
    "UsageEntry",
    "UserQuota",
    "attachment_file_discard",
    "attachments_storage",
]

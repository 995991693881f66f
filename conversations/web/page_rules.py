"""The server's own rules that a page's script applies as the user types, given to it in the markup, so
that no script keeps a copy of them."""

from __future__ import annotations

from django import template
from django.conf import settings

from ..validators import MCP_SLUG_RE

register = template.Library()


@register.simple_tag
def mcp_slug_pattern() -> str:
    """The pattern an MCP server's slug (`org/name[@version]`) matches: the same in Python and JavaScript."""
    return MCP_SLUG_RE.pattern


@register.simple_tag
def attachment_max_bytes() -> int:
    """The largest file an upload takes (CHAT_ATTACHMENT_MAX_BYTES): the page refuses a larger one at once,
    saying how large it is, instead of sending it all to hear the server's 413."""
    return settings.CHAT_ATTACHMENT_MAX_BYTES


@register.simple_tag
def message_max_chars() -> int:
    """The longest message the server takes (CHAT_MAX_MESSAGE_CHARS, in characters): the box counts
    toward it and holds a longer one back, instead of the thread showing the server's refusal."""
    return settings.CHAT_MAX_MESSAGE_CHARS

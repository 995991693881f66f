"""Validation of the values a client or an admin may give: MCP server targets and session ids."""

import ipaddress
import re
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

SESSION_ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
MCP_SLUG_RE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}/[A-Za-z0-9][A-Za-z0-9_.-]{0,99}(@[A-Za-z0-9_.-]{1,50})?$"
)
MCP_URL_MAX_LENGTH = 2048


def mcp_target_error(target: object) -> str | None:
    """Return why `target` is not an MCP server (slug `org/name[@version]` or https URL), or None."""
    if not isinstance(target, str) or not target.strip():
        return "An MCP server must be a non-empty string."
    if target != target.strip():
        return "An MCP server must not start or end with spaces."
    if MCP_SLUG_RE.match(target):
        return None
    if len(target) > MCP_URL_MAX_LENGTH:
        return f"An MCP server URL must be at most {MCP_URL_MAX_LENGTH} characters."
    try:
        parts = urlsplit(target)
    except ValueError:
        return "An MCP server must be a slug like org/name or an https:// URL."
    if parts.scheme != "https" or not parts.hostname:
        return "An MCP server must be a slug like org/name or an https:// URL."
    if parts.username or parts.password:
        return "An MCP server URL must not carry credentials."
    if any(ch.isspace() for ch in target):
        return "An MCP server URL must not contain spaces."
    return None


def validate_mcp_target(target: str) -> None:
    """Django field validator for `MCPServerPreset.target`."""
    error = mcp_target_error(target)
    if error:
        raise ValidationError(error, code="invalid_mcp_server")


# Names that only mean something inside a network (or this machine): never sent to a hosted service.
INTERNAL_HOST_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa", ".intranet", ".corp")


def mcp_target_is_internal(target: str) -> bool:
    """True for an https URL whose host is loopback, private, link-local or otherwise not public.

    Literal IPs are classified; names are judged by their form (`localhost`, one label, internal
    suffixes), since the URL is fetched by the model service, not resolved here.
    """
    if MCP_SLUG_RE.match(target):
        return False
    host = (urlsplit(target).hostname or "").rstrip(".").lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost" or "." not in host or host.endswith(INTERNAL_HOST_SUFFIXES)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global

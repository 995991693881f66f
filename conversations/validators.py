"""Validation of the values a client or an admin may give: MCP server targets and session ids."""

import ipaddress
import re
import unicodedata

from django.core.exceptions import ValidationError

from .url_hosts import HostError, ipv4_parse, url_host_parse

SESSION_ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
MCP_SLUG_RE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}/[A-Za-z0-9][A-Za-z0-9_.-]{0,99}(@[A-Za-z0-9_.-]{1,50})?$"
)
MCP_URL_MAX_LENGTH = 2048
HTTPS_PREFIX = "https://"
# The authority both URL parsers split alike: a name or `[IPv6]`, then an optional port.
MCP_AUTHORITY_RE = re.compile(r"^(?P<host>\[[^\]]*\]|[^\[\]:]*)(?::(?P<port>[0-9]*))?$")
# The name of one credential value (an API key, a token) as a user is asked for it.
CREDENTIAL_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


def quoted(written: str, limit: int = 200) -> str:
    """What a user or an operator wrote, as a message names it: in single quotes, whatever quotes it holds
    itself (`!r` would switch to double ones), cut at `limit` characters."""
    return f"'{written[:limit]}'"


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
        mcp_host_normalised(target)
    except ValueError as exc:
        return str(exc)
    return None


def validate_mcp_target(target: str) -> None:
    """Django field validator for `MCPServerPreset.target`."""
    error = mcp_target_error(target)
    if error:
        raise ValidationError(error, code="invalid_mcp_server")


def mcp_host_normalised(target: str) -> str:
    """Return the host of the https URL `target` as a WHATWG URL parser reads it (see `url_host_parse`).

    The upstream service is given the URL string as it is and fetches it, so the host is read the
    way such a parser would. Raise ValueError, with a message for the client, for a URL that is not
    `https://host[:port]...`, carries credentials, backslashes, spaces or control characters, writes
    its host with percent-escapes or an IPv4 address other than as a dotted quad (`127.1`,
    `0x7f.0.0.1`, fullwidth digits), or has a host a URL parser rejects.
    """
    if target[: len(HTTPS_PREFIX)].lower() != HTTPS_PREFIX:
        raise ValueError("An MCP server must be a slug like org/name or an https:// URL.")
    # Parsers differ on these (WHATWG reads `\\` as `/` and drops tabs), so none may hide a host.
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in target):
        raise ValueError("An MCP server URL must not contain spaces or control characters.")
    if "\\" in target:
        raise ValueError("An MCP server URL must not contain backslashes.")
    authority = re.split(r"[/?#]", target[len(HTTPS_PREFIX) :], maxsplit=1)[0]
    if "@" in authority:
        raise ValueError("An MCP server URL must not carry credentials.")
    parts = MCP_AUTHORITY_RE.match(authority)
    if not parts or not parts["host"]:
        raise ValueError("An MCP server must be a slug like org/name or an https:// URL.")
    if parts["port"] and int(parts["port"]) > 65535:
        raise ValueError("An MCP server URL's port must be at most 65535.")
    written = parts["host"]
    try:
        host = url_host_parse(written)
    except HostError as exc:
        raise ValueError(f"An MCP server URL's host {exc}.") from exc
    if "%" in written:
        raise ValueError("An MCP server URL's host must not be percent-encoded.")
    if ipv4_parse(host) is not None and written != host:
        # `127.1`, `0x7f.1` or `１２７.０.０.１` is 127.0.0.1 to a URL parser: only one spelling is judged.
        raise ValueError("An MCP server URL must write an IPv4 address as a dotted quad like 192.0.2.1.")
    return host


# Zones that only mean something on this machine or inside a network, never sent to a hosted
# service: the special-use names of RFC 6761 (`localhost`, `test`, `invalid`, `example`), 6762
# (`local`), 8375 (`home.arpa`), 7686 (`onion`) and 9476 (`alt`); `arpa`, whose names are
# infrastructure (`ipv4only.arpa`, reverse zones), not servers; the private-use TLDs ICANN set
# aside or advises against (`internal`, `lan`, `home`, `corp`, `mail`, `private`, `intranet`,
# `localdomain`); and the cluster domains of Kubernetes (`svc`, `cluster.local`) and Consul.
INTERNAL_ZONES = frozenset(
    {
        "localhost",
        "localdomain",
        "local",
        "test",
        "invalid",
        "example",
        "onion",
        "alt",
        "arpa",
        "internal",
        "intranet",
        "lan",
        "home",
        "corp",
        "mail",
        "private",
        "svc",
        "consul",
    }
)
# Not globally reachable, though the `ipaddress` of Python 3.11 still calls them global.
NOT_GLOBAL_NETWORKS = (ipaddress.ip_network("192.0.0.0/24"), ipaddress.ip_network("64:ff9b:1::/48"))
NAT64_NETWORK = ipaddress.ip_network("64:ff9b::/96")


def mcp_target_is_internal(target: str) -> bool:
    """True for an https URL whose host is loopback, private, link-local or otherwise not public.

    Literal IPs are classified, including IPv4 addresses carried in IPv6 (mapped, compatible,
    6to4, NAT64); names are judged by their form (`localhost`, one label, internal suffixes),
    since the URL is fetched by the model service, not resolved here: a public name whose DNS
    answer is internal (`127.0.0.1.nip.io`) is not caught. A URL whose host cannot be read is
    internal, so an unchecked caller fails closed.
    """
    if MCP_SLUG_RE.match(target):
        return False
    try:
        host = mcp_host_normalised(target)
    except ValueError:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return name_is_internal(host)
    return address_is_internal(address)


def name_is_internal(host: str) -> bool:
    """True for a single-label name (resolved through search domains) or one in an internal zone.

    A zone matches whole labels, so `kubernetes.default.svc` and `printer.local` are internal and
    `svc.example.com` is not; the special-use zones above are all top-level, so the last label decides.
    """
    return "." not in host or host.rsplit(".", 1)[-1] in INTERNAL_ZONES


def address_is_internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True unless `address`, or the IPv4 address an IPv6 one carries, is globally routable unicast."""
    if isinstance(address, ipaddress.IPv6Address):
        carried = ipv4_carried(address)
        if carried is not None:
            return address_is_internal(carried)
    return (
        not address.is_global
        or address.is_multicast
        or address.is_reserved
        or any(address in network for network in NOT_GLOBAL_NETWORKS)
    )


def ipv4_carried(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """Return the IPv4 address an IPv6 one reaches (mapped, compatible, 6to4 or NAT64), or None."""
    if address in NAT64_NETWORK or int(address) >> 32 == 0:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.ipv4_mapped or address.sixtofour


# An agent's settings: what each may be. They go upstream as the request's own fields.
AGENT_SETTING_RANGES: dict[str, tuple[type, float, float]] = {
    "temperature": (float, 0.0, 2.0),
    "top_p": (float, 0.0, 1.0),
    "max_tokens": (int, 1, 1_000_000),
    # Tokens a thinking model may spend thinking (sent as `thinking.budget_tokens`; the API's least is 1024).
    "thinking_budget": (int, 1024, 1_000_000),
}
REASONING_EFFORTS = ("minimal", "low", "medium", "high")
AGENT_MAX_MODELS = 8
# An agent's colour, for its mark on the page: #rrggbb, or empty for none.
AGENT_COLOUR_RE = re.compile(r"#[0-9A-Fa-f]{6}")


def agent_definition_errors(
    *,
    model_names: object,
    settings: object,
    mcp_servers: object,
    model_settings: object = None,
    colour: object = "",
) -> dict[str, str]:
    """Return what is wrong with an agent's models, settings (for all its models, and `model_settings`
    for one model each, by id), MCP servers and colour, by field (empty: nothing).

    The shapes only: whether the models are in the catalog is the model's own check."""
    errors: dict[str, str] = {}
    if (
        not isinstance(model_names, list)
        or not model_names
        or not all(isinstance(name, str) and name.strip() for name in model_names)
    ):
        errors["model_names"] = "One or more model ids: the first answers, the others may take over."
    elif len(model_names) > AGENT_MAX_MODELS:
        errors["model_names"] = f"At most {AGENT_MAX_MODELS} models."
    elif len(set(model_names)) != len(model_names):
        errors["model_names"] = "A model may appear only once."
    if not isinstance(settings, dict):
        errors["settings"] = "An object of settings (temperature, top_p, max_tokens, reasoning_effort)."
    else:
        problems = [problem for key, value in settings.items() if (problem := setting_error(key, value))]
        if problems:
            errors["settings"] = " ".join(problems)
    model_settings = {} if model_settings is None else model_settings
    if not isinstance(model_settings, dict) or not all(isinstance(v, dict) for v in model_settings.values()):
        errors["model_settings"] = 'An object of settings by model id: {"openai/gpt-5.1": {...}}.'
    else:
        names = model_names if isinstance(model_names, list) else []
        problems = [
            f"{str(name)[:200]!r} is not one of the agent's models."
            for name in model_settings
            if name not in names
        ]
        problems += [
            f"{name}: {problem}"
            for name, one in model_settings.items()
            for key, value in one.items()
            if (problem := setting_error(key, value))
        ]
        if problems:
            errors["model_settings"] = " ".join(problems)
    if not isinstance(mcp_servers, list):
        errors["mcp_servers"] = "A list of MCP servers (org/name[@version] or https URLs)."
    else:
        problems = [
            f"{quoted(str(target))}: {error}" for target in mcp_servers if (error := mcp_target_error(target))
        ]
        if problems:
            errors["mcp_servers"] = " ".join(problems)
    if colour and not (isinstance(colour, str) and AGENT_COLOUR_RE.fullmatch(colour)):
        errors["colour"] = "A colour as #rrggbb, such as #7c3aed, or empty for none."
    return errors


def setting_error(key: object, value: object) -> str | None:
    """What is wrong with one reply setting (its name, type or range), or None."""
    if key == "reasoning_effort":
        if value not in REASONING_EFFORTS:
            return f"reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}."
        return None
    if key not in AGENT_SETTING_RANGES:
        known = ", ".join([*AGENT_SETTING_RANGES, "reasoning_effort"])
        return f"{str(key)[:40]!r} is not a setting ({known})."
    kind, low, high = AGENT_SETTING_RANGES[key]
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if not numeric or (kind is int and not isinstance(value, int)) or not low <= value <= high:
        what = "a whole number" if kind is int else "a number"
        return f"{key} must be {what} from {number_words(low)} to {number_words(high)}."
    return None


def number_words(value: float) -> str:
    """A bound as a person writes it: 0, 2, 0.5, 1,000,000 (not 1e+06)."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"

"""The host a WHATWG URL parser (browsers, Node's fetch) reads from an https URL's host as written."""

import ipaddress
import re
from urllib.parse import unquote

import idna

# What IDNA leaves of a host we accept: letters, digits and hyphens in dot-separated labels.
ASCII_HOST_RE = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)*$")
IPV6_LITERAL_RE = re.compile(r"^\[([0-9A-Fa-f:.]+)\]$")
IPV4_NUMBER_DIGITS = {10: "0123456789", 8: "01234567", 16: "0123456789abcdef"}


class HostError(ValueError):
    """A host that a URL parser rejects, or that we cannot read the same way it does."""


def url_host_parse(written: str) -> str:
    """Return the host a WHATWG URL parser reads from `written`, the host part of an https URL.

    The result is lower-case ASCII without a trailing dot: percent-escapes decoded, then mapped
    through IDNA (UTS #46), which folds case, turns fullwidth and enclosed digits and ideographic
    full stops into ASCII and Unicode labels into `xn--` ones. A host that ends in a number is an
    IPv4 address in any form inet_aton accepts (`127.1`, `0x7f.1`, `0177.0.0.1`, `2130706433`) and
    is returned as its dotted quad; a `[...]` literal is returned as its compressed IPv6 address.
    Raise HostError for a host such a parser rejects, or one IDNA cannot map.
    """
    literal = IPV6_LITERAL_RE.match(written)
    if literal:
        try:
            return str(ipaddress.IPv6Address(literal.group(1)))
        except ValueError as exc:
            raise HostError("is not a valid IPv6 address") from exc
    if written.startswith("["):
        raise HostError("is not a valid IPv6 address")
    try:
        decoded = unquote(written, errors="strict")
        ascii_host = idna.encode(decoded, uts46=True).decode("ascii")
    except (UnicodeError, idna.IDNAError) as exc:
        raise HostError("is not a valid host name") from exc
    ascii_host = ascii_host.removesuffix(".")
    if not ASCII_HOST_RE.match(ascii_host):
        raise HostError("is not a valid host name")
    last_label = ascii_host.rsplit(".", 1)[-1]
    if not last_label.isdigit() and ipv4_number(last_label) is None:
        return ascii_host
    # A host whose last label is a number is an IPv4 address or nothing (WHATWG "ends in a number").
    address = ipv4_parse(ascii_host)
    if address is None:
        raise HostError("ends in a number but is not an IPv4 address")
    return str(address)


def ipv4_number(part: str) -> int | None:
    """Return the value of one IPv4 part (decimal, `0x` hex, or octal with a leading 0), or None."""
    if not part:
        return None
    radix = 10
    if part[:2].lower() == "0x":
        part, radix = part[2:], 16
    elif len(part) > 1 and part.startswith("0"):
        part, radix = part[1:], 8
    if not part:
        return 0  # a bare `0x` is zero to a URL parser
    if any(ch not in IPV4_NUMBER_DIGITS[radix] for ch in part.lower()):
        return None
    return int(part, radix)


def ipv4_parse(host: str) -> ipaddress.IPv4Address | None:
    """Return the address of a 1 to 4 part IPv4 host whose last part fills the bytes left, or None."""
    numbers = [ipv4_number(part) for part in host.split(".")]
    if not 1 <= len(numbers) <= 4 or None in numbers:
        return None
    *leading, last = numbers
    if any(number > 255 for number in leading) or last >= 256 ** (4 - len(leading)):
        return None
    return ipaddress.IPv4Address(sum(n << (8 * (3 - i)) for i, n in enumerate(leading)) + last)

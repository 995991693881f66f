"""MCP server URLs are judged by the host a URL parser reads: no spelling of an internal host passes."""

from __future__ import annotations

import pytest

from conversations.agents.answerers import mcp_servers_clean
from conversations.exceptions import ChatError
from conversations.models import MCPServerPreset, Message
from conversations.url_hosts import HostError, url_host_parse
from conversations.validators import mcp_target_error

# Each of these reaches a loopback, private, link-local, metadata or local-only host once a URL
# parser (browsers, Node, curl's WHATWG mode) or glibc's inet_aton has read it.
INTERNAL_SPELLINGS = [
    # IPv4 numbers in the short, hex, octal and single-integer forms inet_aton accepts.
    "https://127.1/",
    "https://127.0.1/",
    "https://0x7f.0.0.1/",
    "https://0X7F.0.0.1/",
    "https://0x7f.1/",
    "https://0177.0.0.1/",
    "https://0177.1/",
    "https://2130706433/",
    "https://0x7f000001/",
    "https://017700000001/",
    "https://10.1/",
    "https://0.0/",
    "https://0/",
    "https://0x0/",
    "https://169.254.43518/",
    "https://0xa9.0xfe.0xa9.0xfe/",
    "https://0xa9fea9fe/",
    "https://2852039166/latest/meta-data",
    "https://192.168.257/",
    "https://127.0.0.1./",
    "https://127.000.000.001/",
    # The canonical forms, with and without a port.
    "https://127.0.0.1/",
    "https://127.0.0.1:443/",
    "https://0.0.0.0/",
    "https://100.64.0.1/",
    "https://192.0.0.8/",
    "https://169.254.169.254/latest/meta-data",
    "https://224.0.0.1/",
    "https://255.255.255.255/",
    # Digits and dots that IDNA (UTS #46) maps to ASCII.
    "https://１２７.０.０.１/",
    "https://①②⑦.⓪.⓪.①/",
    "https://⑯⑨.②⑤④.⑯⑨.②⑤④/",
    "https://127。0。0。1/",
    "https://127．0．0．1/",
    "https://127｡0｡0｡1/",
    "https://1\u00ad27.0.0.1/",
    # Percent-escapes in the host, which a URL parser decodes.
    "https://127.0.0.1%2e/",
    "https://%31%32%37.0.0.1/",
    "https://%6c%6f%63%61%6c%68%6f%73%74/",
    "https://127.0.0.1%00/",
    # IPv6 literals, and IPv6 forms that carry an internal IPv4 address.
    "https://[::1]/",
    "https://[0:0:0:0:0:0:0:1]/",
    "https://[::]/",
    "https://[::ffff:127.0.0.1]/",
    "https://[::ffff:7f00:1]/",
    "https://[::127.0.0.1]/",
    "https://[fe80::1]/",
    "https://[fd00::1]/",
    "https://[64:ff9b::a9fe:a9fe]/",
    "https://[64:ff9b::127.0.0.1]/",
    "https://[64:ff9b:1::1]/",
    "https://[2002:7f00:1::]/",
    "https://[2001:db8::1]/",
    "https://[fe80::1%25eth0]/",
    "https://[::1]x/",
    # Names that only mean something on this machine or inside a network.
    "https://localhost/",
    "https://localhost./",
    "https://LOCALHOST/",
    "https://LocalHost:8443/",
    "https://ｌｏｃａｌｈｏｓｔ/",
    "https://local\u00adhost/",
    "https://foo.localhost/",
    "https://metadata.google.internal/computeMetadata/v1/",
    "https://metadata/",
    "https://printer.local/",
    "https://nas.home.arpa/",
    "https://box.localdomain/",
    # Cluster and special-use zones (RFC 6761, 6762, 8375, 7686, 9476) and private-use TLDs.
    "https://kubernetes.default.svc/",
    "https://kubernetes.default.svc./api",
    "https://KUBERNETES.DEFAULT.SVC:443/",
    "https://kubernetes.default.svc.cluster.local/",
    "https://vault.service.consul/",
    "https://host.docker.internal/",
    "https://router.lan/",
    "https://nas.home/",
    "https://git.corp/",
    "https://mcp.private/",
    "https://mcp.test/",
    "https://mcp.invalid/",
    "https://mcp.example/",
    "https://duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion/",
    "https://mcp.alt/",
    "https://ipv4only.arpa/",
    "https://1.0.0.127.in-addr.arpa/",
    "https://mcp.localhost/",
    "https://kubernetes/",
    # Hosts a URL parser rejects or that end in a number without being one.
    "https://1.2.3.4.5/",
    "https://example.123/",
    "https://example.0x1/",
    "https://127.0.0.09/",
    "https://4294967296/",
    "https://localhost../",
    "https://a_b.example/",
    "https://exa mple.com/",
    "https://\u2060127.0.0.1/",
    # Authority tricks: credentials, backslashes, missing or extra slashes.
    "https://evil@127.0.0.1/",
    "https://@127.0.0.1/",
    "https://mcp.example.com@127.0.0.1/",
    "https://127.0.0.1\\@mcp.example.com/",
    "https://\\127.0.0.1/",
    "https:\\\\127.0.0.1/",
    "https:127.0.0.1/",
    "https:/127.0.0.1/",
    "https:///127.0.0.1/",
    "https://127.0.0.1:99999/",
    "https://127.0.0.1:x/",
    "https://127.0.0.1\t/",
]

PUBLIC_TARGETS = [
    "https://mcp.example.com/sse",
    "https://MCP.Example.com/sse",
    "https://mcp.example.com:8443/sse?x=1#y",
    "https://1.1.1.1/",
    "https://8.8.8.8:443/mcp",
    "https://[2606:4700:4700::1111]/",
    "https://[::ffff:1.1.1.1]/",
    "https://xn--bcher-kva.example.com/",
    "https://bücher.example.com/",
    # A zone is matched by whole labels: these only look like internal ones.
    "https://svc.example.com/",
    "https://local.example.com/",
    "https://mcp.svc-tools.com/",
    "https://example.mylocal/",
    "https://mcp.example.com./sse",
    # A public name, even one whose DNS answer is internal: hosts are judged by form, not resolved.
    "https://127.0.0.1.nip.io/",
    "https://1e100.net/",
    "org/name",
    "org/name@1.2",
]


@pytest.mark.django_db
@pytest.mark.parametrize("target", INTERNAL_SPELLINGS)
def test_every_spelling_of_an_internal_host_is_refused(target):
    with pytest.raises(ChatError) as caught:
        mcp_servers_clean([target])
    assert caught.value.code == "invalid_mcp_server"


@pytest.mark.django_db
@pytest.mark.parametrize("target", PUBLIC_TARGETS)
def test_public_targets_are_still_accepted(target):
    assert mcp_servers_clean([target]) == [target]


@pytest.mark.parametrize(
    "target",
    [
        "https://127.1/",
        "https://0x7f.0.0.1/",
        "https://１２７.０.０.１/",
        "https://2130706433/",
        "https://1.1.1.1./",
    ],
)
def test_a_number_host_not_written_as_a_dotted_quad_is_refused_with_its_reason(target):
    assert "dotted quad" in mcp_target_error(target)


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("127.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("169.254.43518", "169.254.169.254"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("0.0", "0.0.0.0"),
        ("①②⑦.⓪.⓪.①", "127.0.0.1"),
        ("127.0.0.1%2e", "127.0.0.1"),
        ("%6c%6f%63%61%6c%68%6f%73%74", "localhost"),
        ("LOCALHOST.", "localhost"),
        ("Bücher.example", "xn--bcher-kva.example"),
        ("[0:0:0:0:0:0:0:1]", "::1"),
        ("[::FFFF:7F00:1]", "::ffff:7f00:1"),
    ],
)
def test_the_host_is_read_as_a_url_parser_reads_it(written, read):
    assert url_host_parse(written) == read


@pytest.mark.parametrize(
    "written", ["1.2.3.4.5", "example.0x1", "256.256.256.256", "a..b", "%ff", "[::1", "x%00"]
)
def test_a_host_a_url_parser_rejects_is_an_error(written):
    with pytest.raises(HostError):
        url_host_parse(written)


@pytest.mark.django_db
def test_an_internal_host_offered_as_a_preset_is_allowed_only_as_written():
    MCPServerPreset.objects.create(label="Local tools", target="https://127.0.0.1:8443/mcp")
    assert mcp_servers_clean(["https://127.0.0.1:8443/mcp"]) == ["https://127.0.0.1:8443/mcp"]
    with pytest.raises(ChatError):
        mcp_servers_clean(["https://127.1:8443/mcp"])


@pytest.mark.django_db(transaction=True)
async def test_a_short_loopback_spelling_gets_an_error_frame_and_never_goes_upstream(chat_socket, standin):
    await chat_socket.send_json_to({"message": "x", "mcp_servers": ["https://127.1/"]})
    frame = await chat_socket.receive_json_from()
    assert (frame["type"], frame["code"]) == ("error", "invalid_mcp_server")
    assert await Message.objects.acount() == 0
    assert await chat_socket.receive_nothing()
    assert standin.requests() == []

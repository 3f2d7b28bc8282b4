"""Which peer addresses are public (``calendar_svc.addresses``), and whole-secret scrubbing.

The notifiers' and sources' end-to-end refusals are in ``test_fault_small.py``
(``notify-test`` against each IPv6 form), ``test_notifier_webhook.py``,
``test_notifier_ntfy.py`` and ``test_sources.py``; here each form is judged by
the function alone, both ways: the same IPv6 form carrying a public IPv4
address stays usable (an IPv6-only network reaches IPv4 servers through
NAT64).
"""

from __future__ import annotations

import ipaddress

import pytest

from calendar_svc.addresses import check_literal, embedded_ipv4, is_public, public_addresses
from calendar_svc.errors import NonPublicAddressError, UnresolvedHostError
from calendar_svc.notifiers.redaction import scrub


@pytest.mark.parametrize(
    "text",
    [
        "127.0.0.1",
        "10.1.2.3",
        "169.254.169.254",
        "100.100.100.200",
        "::1",
        "fe80::1",
        "fd00:ec2::254",
        "ff02::1",
        "::127.0.0.1",  # compatible
        "::ffff:127.0.0.1",  # mapped
        "::ffff:10.0.0.1",
        "64:ff9b::7f00:1",  # NAT64 to loopback
        "64:ff9b::a9fe:a9fe",  # NAT64 to the metadata endpoint
        "64:ff9b:1::808:808",  # local-use NAT64: never public
        "2002:7f00:1::1",  # 6to4 of loopback
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
        "2001:0:4136:e378:8000:63bf:f7f7:f7f7",  # Teredo, client 8.8.8.8: still a tunnel
    ],
)
def test_non_public_addresses(text: str) -> None:
    assert not is_public(ipaddress.ip_address(text))
    with pytest.raises(NonPublicAddressError, match="allow_private"):
        check_literal(text)


@pytest.mark.parametrize(
    "text",
    ["8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"],
)
def test_public_addresses(text: str) -> None:
    assert is_public(ipaddress.ip_address(text))
    check_literal(text)


def test_the_embedded_ipv4_of_each_form() -> None:
    def inner(text: str) -> list[str] | None:
        found = embedded_ipv4(ipaddress.IPv6Address(text))
        return None if found is None else [str(a) for a in found]

    assert inner("::ffff:1.2.3.4") == ["1.2.3.4"]
    assert inner("::1.2.3.4") == ["1.2.3.4"]
    assert inner("64:ff9b::102:304") == ["1.2.3.4"]
    assert inner("2002:102:304::1") == ["1.2.3.4"]
    assert inner("2001:0:4136:e378:8000:63bf:80ff:fffe") == ["65.54.227.120", "127.0.0.1"]
    assert inner("2606:4700::1111") is None


def test_names_are_checked_by_what_they_resolve_to() -> None:
    check_literal("localhost")  # a name passes the literal check ...
    with pytest.raises(NonPublicAddressError, match="non-public address"):
        public_addresses("localhost", 80, where="http://localhost")  # ... not the lookup
    with pytest.raises(UnresolvedHostError, match="cannot resolve"):
        public_addresses("nothing.invalid", 80, where="http://nothing.invalid")


@pytest.mark.parametrize(
    ("text", "secret", "expected"),
    [
        # A short webhook path is not cut out of the scheme's "//h".
        ("https://hooks.invalid: refused", "/h", "https://hooks.invalid: refused"),
        ("POST https://hooks.invalid/h failed", "/h", "POST https://hooks.invalid*** failed"),
        ("topic phone, phones and telephone", "phone", "topic ***, phones and telephone"),
        # A dot that ends a sentence does not protect a secret; one inside a name does.
        ("sent to s3cr3t.", "s3cr3t", "sent to ***."),
        ("s3cr3t.example.org", "s3cr3t", "s3cr3t.example.org"),
        ("key=abc/def, again abc/def", "abc/def", "key=***, again ***"),
    ],
)
def test_scrubbing_replaces_whole_secrets_only(text: str, secret: str, expected: str) -> None:
    assert scrub(text, [secret]) == expected


def test_a_longer_secret_is_scrubbed_before_one_it_contains() -> None:
    assert scrub("url /services/T1/s3cr3t", ["s3cr3t", "/services/T1/s3cr3t"]) == "url ***"

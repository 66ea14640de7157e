import pytest

from service.hostnames import InvalidHostname, same_host, to_ascii, to_unicode


def test_unicode_host_becomes_punycode():
    assert to_ascii("bücher.example") == "xn--bcher-kva.example"


def test_round_trip():
    assert to_unicode(to_ascii("bücher.example")) == "bücher.example"


def test_case_and_trailing_dot_are_the_same_host():
    assert same_host("Payments.Example.com.", "payments.example.com")


def test_invalid_label_is_refused():
    with pytest.raises(InvalidHostname):
        to_ascii("a" * 64 + ".example")

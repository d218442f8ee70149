"""Domains are normalised with IDNA 2008 and UTS 46 (issue 13, item 9), not IDNA 2003."""

from __future__ import annotations

import json

import pytest

from apps.core.text import InvalidDomain, domain_normalized, normalize_domain
from apps.enrichment.models import Contact
from tests.support.api import EMAIL_CONTACT


@pytest.mark.parametrize(
    ("raw", "ascii_form"),
    [
        # ß is a letter of its own in IDNA 2008: 'strasse.de' is someone else's domain.
        ("straße.de", "xn--strae-oqa.de"),
        # UTS 46 maps case first (and ẞ, capital sharp s, to ß, not to 'ss').
        ("STRAẞE.DE", "xn--strae-oqa.de"),
        ("https://www.Straße.de/impressum", "xn--strae-oqa.de"),
        # Final sigma stays final sigma (IDNA 2003 made it a plain sigma).
        ("σοφος.gr", "xn--0xaajbq.gr"),
        ("ΣΟΦΟΣ.gr", "xn--0xaakcn.gr"),
        # ZWNJ and ZWJ are kept where CONTEXTJ allows them: right after a virama.
        ("क्\u200cष.in", "xn--11b2ezcs70k.in"),
        ("क्\u200dष.in", "xn--11b2ezcw70k.in"),
        # Full-width letters and the ideographic full stop are mapped.
        ("\uff57\uff57\uff57.\uff53tripe.\uff43om", "stripe.com"),
        ("stripe。com", "stripe.com"),
        ("Bücher.example:8080/x", "xn--bcher-kva.example"),
        # An A-label that decodes to a valid U-label is left as it is.
        ("xn--strae-oqa.de", "xn--strae-oqa.de"),
        ("Stripe.COM.", "stripe.com"),
    ],
)
def test_idna_2008_forms(raw, ascii_form):
    assert normalize_domain(raw) == ascii_form


def test_ss_and_sharp_s_are_different_domains():
    assert normalize_domain("straße.de") != normalize_domain("strasse.de") == "strasse.de"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("a\u200cb.com", "Joiner U+200C not allowed"),  # no virama before the ZWNJ
        ("a\u200db.com", "Joiner U+200D not allowed"),
        ("ab--cd.com", "disallowed hyphens in 3rd and 4th position"),
        ("xn--zz.com", "Invalid A-label"),
        ("💩.la", "Codepoint U+1F4A9"),  # a symbol: allowed by IDNA 2003, not by 2008
        ("\u0640abc.com", "Codepoint U+0640"),
    ],
)
def test_invalid_labels_say_why(raw, reason):
    with pytest.raises(InvalidDomain) as caught:
        domain_normalized(raw)
    message = str(caught.value)
    assert message.startswith("Must be a valid domain name (IDNA 2008): ")
    assert reason in message
    assert normalize_domain(raw) is None


@pytest.mark.parametrize("raw", ["localhost", "not a domain", "[::1]", "1.2.3.4", "my_host.com"])
def test_not_hostnames_keep_the_plain_message(raw):
    with pytest.raises(InvalidDomain, match=r"^Must be a hostname such as 'stripe.com'\.$"):
        domain_normalized(raw)


@pytest.mark.django_db
def test_the_api_stores_the_idna_2008_form(api):
    body = {**EMAIL_CONTACT, "domain": "Straße.de"}
    response = api.post("/api/v1/enrich", json.dumps(body), content_type="application/json")
    assert response.status_code == 202, response.json()
    assert Contact.objects.get().domain == "xn--strae-oqa.de"


@pytest.mark.django_db
def test_an_invalid_label_is_a_422_naming_the_field(api):
    body = {
        "enrichment_type": ["email"],
        "contacts": [
            {**EMAIL_CONTACT, "enrichment_type": ["email"]},
            {**EMAIL_CONTACT, "first_name": "Ana", "domain": "a\u200cb.com"},
        ],
    }
    response = api.post("/api/v1/enrich/bulk", json.dumps(body), content_type="application/json")
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["details"] == {
        "contacts[1].domain": "Must be a valid domain name (IDNA 2008): "
        "Joiner U+200C not allowed at position 2 in 'a\\u200cb'."
    }

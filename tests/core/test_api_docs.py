"""/api/docs/ (Swagger UI) and /api/redoc/ work without internet: every script, stylesheet
and icon they load is served by Sluice itself; component names are not doubled."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

ASSET = re.compile(r'<(?:script|link)\b[^>]*?(?:src|href)="([^"]+)"')


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_the_docs_load_only_local_scripts_and_styles(db, page):
    client = Client()
    response = client.get(page)
    assert response.status_code == 200
    html = response.content.decode()
    scripts = re.findall(r'<script\b[^>]*\bsrc="([^"]+)"', html)
    assert scripts, html
    for url in scripts:
        assert url.startswith("/static/"), url  # no CDN
    assert "https://" not in html and "http://" not in html  # no font or CDN host either
    for url in ASSET.findall(html):
        assert client.get(url).status_code == 200, url


def test_no_component_name_says_request_twice():
    names = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]
    assert "EnrichRequest" in names and "BulkRequest" in names
    assert not [name for name in names if "RequestRequest" in name]

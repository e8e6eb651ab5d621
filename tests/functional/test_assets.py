"""Static assets: content-hashed URLs cached for a year, compressed when the browser asks, plain names still work."""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import brotli
import pytest
from flask_compress import flask_compress

from dashboards.views import PLOTLY_JS
from growth.assets import IMMUTABLE, SHORT, digest, fingerprinted

PLOTLY = Path(PLOTLY_JS)
PLOTLY_HASH = hashlib.sha256(PLOTLY.read_bytes()).hexdigest()[:12]
PLOTLY_URL = f"/dashboards/assets/plotly.min.{PLOTLY_HASH}.js"


def test_the_funnel_page_links_plotly_and_the_app_files_by_content_hash(client, login):
    login("analyst")
    html = client.get("/dashboards/funnel").get_data(as_text=True)
    assert f'src="{PLOTLY_URL}"' in html
    assert re.search(r'href="/static/app\.[0-9a-f]{12}\.css"', html)
    assert re.search(r'src="/static/charts\.[0-9a-f]{12}\.js"', html)
    assert re.search(r'href="/bootstrap/static/css/bootstrap\.min\.[0-9a-f]{12}\.css"', html)
    assert "plotly.min.js" not in html and 'app.css"' not in html


def test_the_api_docs_page_links_the_swagger_files_by_content_hash(client):
    html = client.get("/api/docs").get_data(as_text=True)
    assert re.search(r'src="/api/docs/assets/swagger-ui-bundle\.[0-9a-f]{12}\.js"', html)
    assert re.search(r'href="/api/docs/assets/swagger-ui\.[0-9a-f]{12}\.css"', html)


def test_plotly_is_served_gzip_encoded_when_asked_and_cached_for_a_year(client):
    response = client.get(PLOTLY_URL, headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Cache-Control"] == IMMUTABLE == "public, max-age=31536000, immutable"
    assert "Accept-Encoding" in response.headers["Vary"]
    assert int(response.headers["Content-Length"]) == len(response.data) < PLOTLY.stat().st_size / 3
    assert gzip.decompress(response.data) == PLOTLY.read_bytes()
    assert response.mimetype == "text/javascript"


def test_plotly_is_served_brotli_encoded_to_a_browser_that_prefers_it(client):
    response = client.get(PLOTLY_URL, headers={"Accept-Encoding": "br;q=1.0, gzip;q=0.5"})
    assert response.headers["Content-Encoding"] == "br"
    assert brotli.decompress(response.data) == PLOTLY.read_bytes()


def test_a_client_that_asks_for_no_encoding_gets_the_plain_file(client):
    response = client.get(PLOTLY_URL)
    assert "Content-Encoding" not in response.headers
    assert response.data == PLOTLY.read_bytes()


def test_the_plain_url_still_works_with_a_short_lifetime(client):
    response = client.get("/dashboards/assets/plotly.min.js", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == SHORT == "public, max-age=300"
    assert gzip.decompress(response.data) == PLOTLY.read_bytes()
    static = client.get("/static/app.css")
    assert static.status_code == 200 and static.headers["Cache-Control"] == SHORT


def test_an_outdated_hash_serves_the_current_file_but_not_as_immutable(client):
    response = client.get("/static/app.0123456789ab.css")
    assert response.status_code == 200
    assert response.data == client.get("/static/app.css").data
    assert response.headers["Cache-Control"] == SHORT
    stale_plotly = client.get("/dashboards/assets/plotly.min.0123456789ab.js")
    assert stale_plotly.status_code == 200 and stale_plotly.headers["Cache-Control"] == SHORT


def test_a_missing_asset_is_404_and_not_cached(client):
    response = client.get("/static/nothing.0123456789ab.css")
    assert response.status_code == 404
    assert "immutable" not in response.headers.get("Cache-Control", "")
    assert client.get("/api/docs/assets/package.0123456789ab.json").status_code == 404


def test_a_revalidation_with_the_encoded_etag_is_answered_304(client):
    first = client.get(PLOTLY_URL, headers={"Accept-Encoding": "gzip"})
    again = client.get(PLOTLY_URL, headers={"Accept-Encoding": "gzip", "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert again.headers["Cache-Control"] == IMMUTABLE


def test_each_file_is_compressed_once_and_kept_privately_in_the_instance_folder(app, client, monkeypatch):
    calls: list[str] = []
    original = flask_compress._compress_data

    def counting(app_, data, algorithm):  # type: ignore[no-untyped-def]
        calls.append(algorithm)
        return original(app_, data, algorithm)

    monkeypatch.setattr(flask_compress, "_compress_data", counting)
    for _ in range(3):
        assert client.get(PLOTLY_URL, headers={"Accept-Encoding": "gzip"}).headers["Content-Encoding"] == "gzip"
    assert calls == ["gzip"]
    kept = list((Path(app.instance_path) / "compressed-assets").iterdir())
    assert len(kept) == 1 and kept[0].stat().st_mode & 0o777 == 0o600


def test_pages_and_api_answers_are_not_compressed(client, login):
    # They carry CSRF tokens and personal data: compressing them would open BREACH-style side channels.
    login("analyst")
    page = client.get("/dashboards/funnel", headers={"Accept-Encoding": "gzip, br"})
    api = client.get("/api/v1/funnel", headers={"Accept-Encoding": "gzip, br"})
    assert "Content-Encoding" not in page.headers and "Content-Encoding" not in api.headers


def test_a_range_request_is_answered_uncompressed(client):
    response = client.get(PLOTLY_URL, headers={"Accept-Encoding": "gzip", "Range": "bytes=0-99"})
    assert response.status_code == 206
    assert "Content-Encoding" not in response.headers
    assert response.data == PLOTLY.read_bytes()[:100]


@pytest.mark.parametrize(("name", "expected"), [
    ("app.css", "app.0123456789ab.css"),
    ("css/bootstrap.min.css", "css/bootstrap.min.0123456789ab.css"),
    ("LICENSE", "LICENSE"),
    (".hidden", ".hidden"),
    ("dir.v2/README", "dir.v2/README"),
])
def test_the_hash_goes_before_the_last_extension(name, expected):
    assert fingerprinted(name, "0123456789ab") == expected


def test_the_hash_follows_the_content(tmp_path):
    asset = tmp_path / "a.js"
    asset.write_text("one")
    first = digest(asset)
    asset.write_text("two!")  # a different size, so a new stat key even within one mtime tick
    assert digest(asset) != first
    assert digest(asset) == hashlib.sha256(b"two!").hexdigest()[:12]

"""Request bodies are capped per class of route: the events API 5 MiB, CSV imports 4 MiB, everything else 1 MiB."""

from __future__ import annotations

import io

import orjson

from growth.events.rules import MAX_BODY_BYTES
from growth.request_size import DEFAULT_MAX_BODY, UPLOAD_MAX_BODY
from tests.events import event, signed_headers

MiB = 1024 * 1024


def _file(size: int, name: str = "costs.csv") -> dict:
    return {"file": (io.BytesIO(b"x" * size), name)}


def test_only_the_events_api_and_the_csv_import_take_more_than_the_default(app):
    declared = {endpoint: view.max_body for endpoint, view in app.view_functions.items()
                if getattr(view, "max_body", None) is not None and view.max_body > DEFAULT_MAX_BODY}
    assert declared == {
        "events_api.receive_events": declared["events_api.receive_events"],
        "acquisition.import_costs": UPLOAD_MAX_BODY,
    }
    assert MAX_BODY_BYTES < declared["events_api.receive_events"] < MAX_BODY_BYTES + MiB
    assert app.config["MAX_CONTENT_LENGTH"] == DEFAULT_MAX_BODY == MiB


def test_an_ordinary_form_route_refuses_a_body_over_1_mib_with_413(client):
    response = client.post("/login", data={"email": "a@example.com", "password": "x", **_file(MiB + 1)},
                           content_type="multipart/form-data")
    assert response.status_code == 413


def test_an_ordinary_form_route_still_takes_a_body_under_1_mib(client):
    response = client.post("/login", data={"email": "a@example.com", "password": "x", **_file(MiB - 4096)},
                           content_type="multipart/form-data")
    assert response.status_code != 413


def test_a_client_that_wants_json_gets_the_413_as_json(client):
    response = client.post("/login", data=b"x" * (2 * MiB), content_type="application/json",
                           headers={"Accept": "application/json"})
    assert response.status_code == 413
    assert response.is_json and "error" in response.json


def test_the_csv_import_takes_a_3_mib_upload_and_judges_it_itself(client, login):
    login("marketer")
    response = client.post("/acquisition/costs/import", data=_file(3 * MiB), content_type="multipart/form-data")
    assert response.status_code == 302  # the view's own "file too large (at most 2 MB)" message, not a 413


def test_the_csv_import_refuses_a_body_over_4_mib_with_413(client, login):
    login("marketer")
    response = client.post("/acquisition/costs/import", data=_file(UPLOAD_MAX_BODY + 1),
                           content_type="multipart/form-data")
    assert response.status_code == 413


def test_the_route_limit_applies_before_the_csrf_check_reads_the_form(app, client, login):
    login("marketer")
    app.config["WTF_CSRF_ENABLED"] = True
    response = client.post("/acquisition/costs/import", data=_file(3 * MiB), content_type="multipart/form-data")
    assert response.status_code == 400  # refused for its missing CSRF token, read under the 4 MiB limit
    response = client.post("/acquisition/costs/import", data=_file(UPLOAD_MAX_BODY + 1),
                           content_type="multipart/form-data")
    assert response.status_code == 413


def test_the_events_api_takes_5_mib_and_answers_larger_bodies_with_its_json_413(client):
    one = event("funds.deposited", "u1", "2026-10-01T10:00:00+08:00", {"deposit_id": "d1", "amount": "1.00"})
    one["padding"] = ""
    one["padding"] = "x" * (MAX_BODY_BYTES - len(orjson.dumps(one)))
    body = orjson.dumps(one)
    response = client.post("/api/v1/events", data=body, headers=signed_headers(body))
    assert response.status_code == 200
    for size in (MAX_BODY_BYTES + 1, MAX_BODY_BYTES + 2 * MiB):
        big = orjson.dumps(one | {"padding": "x" * size})
        response = client.post("/api/v1/events", data=big, headers=signed_headers(big))
        assert response.status_code == 413
        assert response.json == {"error": f"body larger than {MAX_BODY_BYTES} bytes"}

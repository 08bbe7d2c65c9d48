"""Property-based fuzzing of the webhook intake: whatever arrives, the answer is never a 5xx, a refused delivery
leaves no row behind, and parsing hostile bodies stays within a bounded amount of memory."""

from __future__ import annotations

import json
import os
import tracemalloc
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.intake.parsing import decode_body
from service.intake.schemas import SUBJECT_SCHEMAS
from service.store.tables import events, work
from tests.support.values import WEBHOOK_SECRET

ACCEPTED = {200, 400, 403, 413, 415, 422}
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
event_names = st.sampled_from([*SUBJECT_SCHEMAS, "test", "user:deleted", "mfa:verified"]) | st.text(max_size=40)
header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
content_types = (
    st.sampled_from(
        ["application/json", "application/x-www-form-urlencoded", "text/plain", "application/json; charset=utf-8", ""]
    )
    | header_text
)


@pytest.fixture
def client(app):
    return app.test_client()


def row_counts(engine):
    with engine.connect() as connection:
        return tuple(connection.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() for t in (events, work))


def post(client, body: bytes, content_type: str, headers=None):
    merged = {"x-authing-token": WEBHOOK_SECRET, **(headers or {})}
    if content_type:
        merged["Content-Type"] = content_type
    return client.post("/webhooks/genauth", data=body, headers=merged)


def check(client, engine, body: bytes, content_type: str, headers=None):
    before = row_counts(engine)
    response = post(client, body, content_type, headers)
    assert response.status_code in ACCEPTED, (response.status_code, response.get_data()[:200])
    if response.status_code != 200:
        assert row_counts(engine) == before, "a refused delivery left a row"
        assert set(response.get_json()) == {"code", "status", "message", "errors"}
    return response


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@FUZZ
@given(body=st.binary(max_size=2000), content_type=content_types)
def test_arbitrary_bytes_never_cause_a_server_error(client, engine, body, content_type):
    """Random bytes under any content type are answered 2xx or 4xx, and stored only when accepted."""
    check(client, engine, body, content_type)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@FUZZ
@given(event=event_names, data=json_values, extra=st.dictionaries(st.text(max_size=8), json_values, max_size=3))
def test_arbitrary_json_envelopes_never_cause_a_server_error(client, engine, event, data, extra):
    """Any JSON envelope, with any event name and data, is answered 2xx or 4xx."""
    body = {**extra, "eventName": event, "data": data}
    check(client, engine, json.dumps(body).encode(), "application/json")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@FUZZ
@given(
    event=st.sampled_from(sorted(SUBJECT_SCHEMAS)),
    where=st.sampled_from(["eventName", "data", "id", "userPoolId", "user"]),
    value=json_values,
)
def test_wrong_types_in_every_field_of_every_event_are_refused_cleanly(client, engine, event, where, value):
    """Replacing any field of a valid event with any JSON value gives 200 (still valid) or 422, never 5xx."""
    user = {"id": "65a1f0c2e4b0a1b2c3d4e5f6", "userPoolId": "659f1e2d3c4b5a6978012345"}
    wrapped = SUBJECT_SCHEMAS[event].__name__ == "UserInDataSchema"
    body = {"eventName": event, "data": {"user": user} if wrapped else dict(user)}
    if where in ("eventName", "data"):
        body[where] = value
    elif where == "user":
        body["data"] = {"user": value} if wrapped else value
    else:
        (body["data"]["user"] if wrapped else body["data"])[where] = value
    response = check(client, engine, json.dumps(body).encode(), "application/json")
    assert response.status_code in (200, 400, 403, 422)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@FUZZ
@given(pairs=st.lists(st.tuples(st.text(max_size=30), st.text(max_size=30)), max_size=20))
def test_arbitrary_form_fields_never_cause_a_server_error(client, engine, pairs):
    """Any form body (bracket keys, odd characters, contradictions) is answered 2xx or 4xx."""
    body = "&".join(f"{quote(key)}={quote(value)}" for key, value in pairs).encode()
    check(client, engine, body, "application/x-www-form-urlencoded")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@FUZZ
@given(
    headers=st.dictionaries(
        st.sampled_from(
            [
                "x-authing-token",
                "x-genauth-token",
                "x-authing-userpool-id",
                "x-authing-webhook-secret",
                "content-length-ish",
            ]
        ),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
        max_size=4,
    )
)
def test_arbitrary_secret_and_pool_headers_never_cause_a_server_error(client, engine, headers):
    """Odd values in the secret and user-pool headers give 200, 401 or 403, never 5xx."""
    body = json.dumps({"eventName": "test", "data": {}}).encode()
    before = row_counts(engine)
    response = client.post("/webhooks/genauth", data=body, headers={"Content-Type": "application/json", **headers})
    assert response.status_code in (200, 401, 403)
    if response.status_code != 200:
        assert row_counts(engine) == before


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"[" * 600_000 + b"]" * 600_000, "application/json", 413),
        (b"[" * 100_000, "application/json", 400),
        # Sized to stay under the default body limit (256 KiB), so that the parser, not the size, refuses them.
        (b'{"a":' * 5_000 + b"1" + b"}" * 5_000, "application/json", 400),
        (("a" + "[x]" * 10 + "=1&").encode() * 5000, "application/x-www-form-urlencoded", 400),
        (
            json.dumps({"eventName": "login", "data": {"id": "u", "pad": ["x" * 100] * 11_000}}).encode(),
            "application/json",
            413,
        ),
    ],
    ids=["huge-deep-array", "unterminated-deep", "deep-objects", "many-deep-form-fields", "over-limit"],
)
def test_deep_and_huge_bodies_are_refused_with_bounded_memory(client, engine, body, content_type, status):
    """Pathological nesting and size are 400 or 413, and the request costs at most a few MiB beyond its body."""
    tracemalloc.start()
    try:
        response = check(client, engine, body, content_type)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == status
    assert peak < len(body) * 4 + 8 * 1024 * 1024, f"peak {peak} bytes for a {len(body)}-byte body"


def test_parser_memory_is_bounded_for_the_largest_accepted_form():
    """A 1 MiB form of short bracket fields parses within a bounded multiple of its size."""
    body = "&".join(f"data[f{i}][x]=v" for i in range(4999)).encode()[: 1024 * 1024]
    tracemalloc.start()
    try:
        decode_body("application/x-www-form-urlencoded", body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 40 * 1024 * 1024


def _ids(count: int) -> list[str]:
    return [f"{index:024x}" for index in range(count)]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"[" + b"{}," * 80_000 + b"{}]", "application/json", 400),
        (json.dumps({f"k{i}": {} for i in range(20_000)}, separators=(",", ":")).encode(), "application/json", 400),
        (
            b"eventName=login&data=" + quote("[" + "{}," * 20_000 + "{}]").encode(),
            "application/x-www-form-urlencoded",
            400,
        ),
        (
            json.dumps(
                {"eventName": "role:assigned", "data": {"userIds": _ids(9000), "groupIds": [], "nodeIds": []}}
            ).encode(),
            "application/json",
            422,
        ),
        (
            json.dumps({"eventName": "group:member-added", "data": {"users": _ids(1001)}}).encode(),
            "application/json",
            422,
        ),
        (b'{"eventName": "login", "data": ' * 2_000 + b"{}" + b"}" * 2_000, "application/json", 400),
    ],
    ids=["object-flood", "key-flood", "form-json-flood", "huge-id-list", "over-the-subject-cap", "deep-envelopes"],
)
def test_hostile_shapes_are_refused_cheaply_and_store_nothing(client, engine, emulator, body, content_type, status):
    """Object floods, huge id lists and deep nesting under the size limit are refused (too many values,
    subjects or levels) within a small multiple of the body's size, and leave no row."""
    pool = {"x-authing-userpool-id": emulator.state.userpool_id}
    tracemalloc.start()
    try:
        response = check(client, engine, body, content_type, headers=pool)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == status, response.get_json()
    assert peak < len(body) * 6 + 4 * 1024 * 1024, f"peak {peak} bytes for a {len(body)}-byte body"


UNSAFE = "\x00\x1b\x7f\x85\x9b\u200b\u200d\u2028\u2029\u202a\u202e\u2066\u2069\ufeff"
hostile_ids = st.text(alphabet=st.sampled_from(["a", "b", "0", "-", *UNSAFE]), min_size=1, max_size=12)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@FUZZ
@given(user_id=hostile_ids, where=st.sampled_from(["login", "role", "form"]))
def test_ids_with_control_or_bidi_characters_are_refused_and_never_stored(client, engine, emulator, user_id, where):
    """An id carrying any control, C1, zero-width or bidi character is refused; an accepted delivery stores
    only clean ids."""
    pool = {"x-authing-userpool-id": emulator.state.userpool_id}
    if where == "login":
        raw, content_type = json.dumps({"eventName": "login", "data": {"id": user_id}}).encode(), "application/json"
    elif where == "role":
        data = {"userIds": [user_id], "groupIds": [], "nodeIds": []}
        raw, content_type = json.dumps({"eventName": "role:assigned", "data": data}).encode(), "application/json"
    else:
        raw, content_type = f"eventName=login&data[id]={quote(user_id)}".encode(), "application/x-www-form-urlencoded"
    response = check(client, engine, raw, content_type, headers=pool)
    if set(user_id) & set(UNSAFE):
        assert response.status_code in (400, 422)
    else:
        assert response.status_code == 200
    with engine.connect() as connection:
        stored = connection.execute(sa.select(work.c.user_id)).scalars().all()
    assert not any(set(value) & set(UNSAFE) for value in stored)

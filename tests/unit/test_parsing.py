"""Webhook bodies in JSON and in every form-encoded shape GenAuth might use."""

import json
import tracemalloc
from urllib.parse import quote, urlencode

import pytest

from service.intake.errors import MalformedBodyError, TooManyValuesError, UnsupportedMediaTypeError
from service.intake.parsing import MAX_DEPTH, decode_body

FORM = "application/x-www-form-urlencoded"


def test_json_body_is_parsed():
    """application/json is read as JSON."""
    assert decode_body("application/json", b'{"eventName":"login","data":{"id":"u1"}}') == {
        "eventName": "login",
        "data": {"id": "u1"},
    }


def test_form_bracket_notation_becomes_nested_objects_and_lists():
    """data[a][b]=x and data[list][0]=y rebuild the nested body; empty values become null."""
    raw = urlencode(
        [
            ("eventName", "organization:member-added"),
            ("data[user][id]", "u1"),
            ("data[user][registerSource][0]", "import:manual"),
            ("data[user][registerSource][1]", "basic:email"),
            ("data[user][phone]", ""),
            ("data[node][code]", "finance"),
        ]
    ).encode()
    assert decode_body(FORM, raw) == {
        "eventName": "organization:member-added",
        "data": {
            "user": {"id": "u1", "registerSource": ["import:manual", "basic:email"], "phone": None},
            "node": {"code": "finance"},
        },
    }


def test_form_empty_brackets_append_to_a_list():
    """data[users][]=a&data[users][]=b is a list."""
    raw = b"eventName=x&data[users][]=a&data[users][]=b"
    assert decode_body(FORM, raw)["data"] == {"users": ["a", "b"]}


def test_form_with_a_json_string_field_is_decoded():
    """eventName=login&data={...} decodes the JSON in the data field."""
    raw = urlencode({"eventName": "login", "data": json.dumps({"id": "u1", "userPoolId": "p"})}).encode()
    assert decode_body(FORM, raw) == {"eventName": "login", "data": {"id": "u1", "userPoolId": "p"}}


def test_json_document_sent_with_the_form_content_type_is_read_as_json():
    """A JSON body labelled as a form is still JSON."""
    assert decode_body(FORM, b' {"eventName":"test","data":{}}') == {"eventName": "test", "data": {}}


@pytest.mark.parametrize("mimetype", ["text/plain", "multipart/form-data", "application/xml", ""])
def test_other_content_types_are_unsupported(mimetype):
    """Anything but JSON and form bodies is refused as an unsupported media type."""
    with pytest.raises(UnsupportedMediaTypeError):
        decode_body(mimetype, b"{}")


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"\xff\xfe\x00", b'{"a": 1} trailing', b"[" * 5000 + b"]" * 5000],
    ids=["syntax", "not-utf8", "trailing", "deep"],
)
def test_malformed_json_is_a_malformed_body(raw):
    """Invalid, non-UTF-8, trailing garbage and absurdly deep JSON all fail cleanly."""
    with pytest.raises(MalformedBodyError):
        decode_body("application/json", raw)


def test_depth_limit_allows_reasonable_nesting():
    """Nesting up to the limit is fine; one more level is refused."""
    ok = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    decode_body("application/json", ok.encode())
    too_deep = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    with pytest.raises(MalformedBodyError, match="deeper"):
        decode_body("application/json", too_deep.encode())


@pytest.mark.parametrize(
    "raw",
    [b"a=1&a[b]=2", b"a[b]=2&a=1", b"a]b=1", b"x[99999999]=1", b"a" + b"[x]" * 40 + b"=1"],
    ids=["value-then-object", "object-then-value", "bad-brackets", "huge-index", "too-deep"],
)
def test_contradictory_or_hostile_form_fields_are_malformed(raw):
    """A field that is both a value and an object, bad brackets, huge indexes and deep keys fail cleanly."""
    with pytest.raises(MalformedBodyError):
        decode_body(FORM, raw)


def test_too_many_form_fields_are_refused():
    """More fields than the limit is a malformed body, not a slow parse."""
    raw = "&".join(f"f{i}=1" for i in range(6000)).encode()
    with pytest.raises(MalformedBodyError, match="fields"):
        decode_body(FORM, raw)


def test_numeric_top_level_form_fields_stay_an_object():
    """A form whose only field name is a number ("0=") is an object, not a list (found by fuzzing)."""
    assert decode_body(FORM, b"0") == {"0": None}
    assert decode_body(FORM, b"0=a&1=b") == {"0": "a", "1": "b"}


def test_unicode_digits_are_names_not_list_indexes():
    """Superscript and other non-ASCII digits are plain field names (found by fuzzing)."""
    assert decode_body(FORM, "a[¹]=x&a[²]=y".encode()) == {"a": {"¹": "x", "²": "y"}}


def test_numbers_too_large_to_read_are_malformed_not_a_crash():
    """A 5,000-digit integer or a 5,000-digit form index is a malformed body (found in review)."""
    with pytest.raises(MalformedBodyError, match="too large"):
        decode_body("application/json", b'{"n": ' + b"9" * 5000 + b"}")
    with pytest.raises(MalformedBodyError, match="larger than"):
        decode_body(FORM, b"a[" + b"1" * 5000 + b"]=x")


def test_form_field_name_with_a_trailing_newline_is_refused():
    """`data[id]%0A` is not the field `data[id]`."""
    with pytest.raises(MalformedBodyError):
        decode_body("application/x-www-form-urlencoded", b"eventName=login&data[id]%0A=u1")


def test_a_body_with_more_values_than_the_cap_is_refused_without_parsing():
    """Values are counted from the raw bytes: 1 MiB of empty objects is refused at once, with no allocation
    beyond a few KiB, where parsing it would take about 50 MB."""
    flood = b"[" + b"{}," * (1024 * 1024 // 3 - 1) + b"{}]"
    tracemalloc.start()
    try:
        with pytest.raises(TooManyValuesError):
            decode_body("application/json", flood, max_values=32768)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024, f"peak {peak} bytes"


def test_the_value_count_bounds_every_value_and_spares_real_events():
    """A body just under the cap parses; a JSON string field in a form is counted as well."""
    assert decode_body("application/json", b"[" + b"1," * 99 + b"1]", max_values=200) == [1] * 100
    with pytest.raises(TooManyValuesError):
        decode_body("application/json", b"[" + b"1," * 199 + b"1]", max_values=200)
    with pytest.raises(TooManyValuesError):
        decode_body(FORM, b"eventName=login&data=" + quote("[" + "{}," * 300 + "{}]").encode(), max_values=200)


@pytest.mark.parametrize("raw", [b"eventName=login&data[id]=%ff", b"eventName=%c3%28&data[id]=u1", b"%80=x"])
def test_form_values_that_are_not_utf8_are_malformed(raw):
    """Percent-encoded bytes that are not UTF-8 are refused, not turned into U+FFFD."""
    with pytest.raises(MalformedBodyError, match="not UTF-8"):
        decode_body(FORM, raw)

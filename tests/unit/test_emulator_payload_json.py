"""Jackson's words for a payload that is not JSON (the emulator's Invoke API answers with them)."""

from __future__ import annotations

import pytest

from lambda_affinity.emulator.payload_json import SOURCE, jackson_problem


@pytest.mark.parametrize(
    "payload,message,line,column",
    [
        (b'{"session": ', "Unexpected end-of-input within/between Object entries", 1, 13),
        (b'{"a":1,}', "Unexpected character ('}' (code 125)): was expecting double-quote to start field name", 1, 8),
        (b"[1 2]", "Unexpected character ('2' (code 50)): was expecting comma to separate Array entries", 1, 4),
        (b"nulx", "Unrecognized token 'nulx': was expecting (JSON String, Number, Array", 1, 5),
        (b"12x", "Unexpected character ('x' (code 120)): Expected space separating root-level values", 1, 3),
        (b"01", "Invalid numeric value: Leading zeroes not allowed", 1, 2),
        (b'"a\x01"', "Illegal unquoted character ((CTRL-CHAR, code 1)): has to be escaped", 1, 3),
        (b'"\xc3(', "Invalid UTF-8 middle byte 0x28", 1, 4),
        (b'\n\r\n  {"a":\n x}', "Unrecognized token 'x'", 4, 4),  # CRLF is one line break; columns count bytes
        (b"NaN", "Non-standard token 'NaN': enable `JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS` to allow", 1, 4),
    ],
)
def test_messages_and_locations_are_jacksons(payload, message, line, column):
    got = jackson_problem(payload)
    assert got.startswith(message) and got.endswith(f"\n at {SOURCE}; line: {line}, column: {column}]"), got


def test_an_unclosed_object_names_where_it_opened():
    assert jackson_problem(b' [{"a":1') == (
        f"Unexpected end-of-input: expected close marker for Object (start marker at {SOURCE}; line: 1, column: 3])"
        f"\n at {SOURCE}; line: 1, column: 9]"
    )

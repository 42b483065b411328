"""Why an Invoke payload is not JSON, in the words of AWS's parser (pure).

Lambda's front end reads payloads with Jackson's byte-based parser (UTF8StreamJsonParser, 2.17 or later: the
`[Source: REDACTED ...]` form and columns pointing at the offending byte), so its messages name raw bytes and
count columns in bytes: a non-UTF-8 first byte 0x99 is `Unexpected character ((CTRL-CHAR, code 153))`, `n`
followed by 0x87 is `Invalid UTF-8 start byte 0x87` at column 3 (LocalStack's AWS-validated snapshots hold both).
This scanner follows that parser's paths for one root value with its default features; Python's json decides
validity first, so a valid payload never comes here. Input that Jackson reads as UTF-16/32 (zero bytes in the
first four) is read as UTF-8 here.
"""

from __future__ import annotations

import unicodedata

from ..errors import LambdaAffinityError

SOURCE = "[Source: REDACTED (`StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION` disabled)"
VALUES = "(JSON String, Number, Array, Object or token 'null', 'true' or 'false')"
MAX_TOKEN = 256  # Jackson's default maxErrorTokenLength
_ESCAPES = frozenset(b'"\\/bfnrt')
_HEX = frozenset(b"0123456789abcdefABCDEF")
_ID_START = frozenset(("Lu", "Ll", "Lt", "Lm", "Lo", "Nl", "Sc", "Pc"))
_ID_PART = _ID_START | {"Nd", "Mn", "Mc", "Cf"}


_TOKEN_TYPES = {
    0x7B: "START_OBJECT",
    0x5B: "START_ARRAY",
    0x22: "VALUE_STRING",
    0x74: "VALUE_TRUE",
    0x66: "VALUE_FALSE",
    0x6E: "VALUE_NULL",
    0x2D: "VALUE_NUMBER_INT",
    **{digit: "VALUE_NUMBER_INT" for digit in range(0x30, 0x3A)},
}


class _Bad(LambdaAffinityError, ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def describe(code: int) -> str:
    """Jackson's _getCharDesc."""
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return f"(CTRL-CHAR, code {code})"
    if code > 255:
        return f"'{chr(code)}' (code {code} / 0x{code:x})"
    return f"'{chr(code)}' (code {code})"


def _id_start(code: int) -> bool:
    return unicodedata.category(chr(code)) in _ID_START


def _id_part(code: int) -> bool:
    # Java's isIdentifierIgnorable adds these controls to the Cf characters
    return 0 <= code <= 8 or 0x0E <= code <= 0x1B or 0x7F <= code <= 0x9F or unicodedata.category(chr(code)) in _ID_PART


class _Scanner:
    def __init__(self, data: bytes) -> None:
        self.b = data
        self.i = 3 if data.startswith(b"\xef\xbb\xbf") else 0  # the bootstrapper skips a UTF-8 BOM
        self.line = 1
        self.row = self.i
        self.scopes: list[tuple[str, int, int]] = []  # (Object|Array, line, column of its opening byte)

    # -- locations and errors --------------------------------------------------------------------------------------
    def at(self, back: int = 0) -> str:
        return f"{SOURCE}; line: {self.line}, column: {self.i - back - self.row + 1}]"

    def fail(self, message: str, back: int = 0) -> _Bad:
        return _Bad(f"{message}\n at {self.at(back)}")

    def unexpected(self, code: int, comment: str) -> _Bad:
        return self.fail(f"Unexpected character ({describe(code)}): {comment}", back=1)

    def eof(self, what: str) -> _Bad:
        return self.fail(f"Unexpected end-of-input{what}")

    def desc(self) -> str:
        return self.scopes[-1][0] if self.scopes else "root"

    # -- bytes -----------------------------------------------------------------------------------------------------
    def byte(self, eof_message: str = " in a value") -> int:
        if self.i >= len(self.b):
            raise self.eof(eof_message)
        c = self.b[self.i]
        self.i += 1
        return c

    def skip_ws(self, eof_message: str | None) -> int:
        """The next byte past white space, consumed; -1 at the end when `eof_message` is None."""
        while self.i < len(self.b):
            c = self.b[self.i]
            self.i += 1
            if c > 0x20:
                if c == 0x2F:  # '/': comments are off
                    raise self.unexpected(
                        c,
                        "maybe a (non-standard) comment? (not recognized as one since Feature 'ALLOW_COMMENTS' "
                        "not enabled for parser)",
                    )
                return c
            if c == 0x0A:
                self.line += 1
                self.row = self.i
            elif c == 0x0D:
                if self.i < len(self.b) and self.b[self.i] == 0x0A:
                    self.i += 1
                self.line += 1
                self.row = self.i
            elif c not in (0x20, 0x09):
                raise self.fail(
                    f"Illegal character ({describe(c)}): only regular white space (\\r, \\n, \\t) is allowed "
                    "between tokens"
                )
        if eof_message is None:
            return -1
        raise self.eof(eof_message)

    def char_for_error(self, first: int) -> int:
        """Jackson's _decodeCharForError: the code point starting with `first`, its bytes consumed."""
        if first <= 0x7F:
            return first
        if first & 0xE0 == 0xC0:
            c, needed = first & 0x1F, 1
        elif first & 0xF0 == 0xE0:
            c, needed = first & 0x0F, 2
        elif first & 0xF8 == 0xF0:
            c, needed = first & 0x07, 3
        else:
            raise self.fail(f"Invalid UTF-8 start byte 0x{first:x}")
        for _ in range(needed):
            d = self.byte(" in a value")
            if d & 0xC0 != 0x80:
                raise self.fail(f"Invalid UTF-8 middle byte 0x{d:x}")
            c = (c << 6) | (d & 0x3F)
        return c if c <= 0x10FFFF else 0xFFFD

    def invalid_token(self, matched: str) -> _Bad:
        token = matched
        while self.i < len(self.b):
            c = self.char_for_error(self.byte())
            if not _id_part(c):
                break
            token += chr(c)
            if len(token) >= MAX_TOKEN:
                token += "..."
                break
        return self.fail(f"Unrecognized token '{token}': was expecting {VALUES}")

    # -- values ----------------------------------------------------------------------------------------------------
    def value(self, c: int) -> None:
        """One value whose first byte `c` was consumed."""
        if c == 0x22:
            self.string("string value")
        elif c in (0x7B, 0x5B):
            self.container(c)
        elif c == 0x2D or 0x30 <= c <= 0x39:
            self.number(c)
        elif c in (0x74, 0x66, 0x6E):
            self.token({0x74: "true", 0x66: "false", 0x6E: "null"}[c])
        elif c == 0x4E:
            self.token("NaN")
            raise self.fail("Non-standard token 'NaN': enable `JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS` to allow")
        elif c == 0x49:
            self.token("Infinity")
            raise self.fail(
                "Non-standard token 'Infinity': enable `JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS` to allow"
            )
        elif c in (0x5D, 0x2C, 0x7D) and (c != 0x5D or self.desc() == "Array"):
            raise self.unexpected(c, "expected a value")
        elif c == 0x2B:
            self.byte(" in a Number value")
            raise self.fail(
                "Unexpected character ('+' (code 43)) in numeric value: JSON spec does not allow numbers to have "
                "plus signs: enable `JsonReadFeature.ALLOW_LEADING_PLUS_SIGN_FOR_NUMBERS` to allow",
                back=1,
            )
        elif _id_start(c):  # the raw byte, as Jackson's byte-based parser passes it
            raise self.invalid_token(chr(c))
        else:
            raise self.unexpected(c, f"expected a valid value {VALUES}")

    def token(self, word: str, prefix: str = "") -> None:
        """Jackson's _matchToken: the rest of `word`, whose first byte was consumed (after `prefix`)."""
        start = self.i - 1
        for expected in word.encode()[1:]:
            if self.i >= len(self.b) or self.b[self.i] != expected:
                raise self.invalid_token(prefix + word[: self.i - start])
            self.i += 1
        if self.i < len(self.b):
            c = self.b[self.i]
            if c >= 0x30 and c not in (0x5D, 0x7D):
                start = self.i
                decoded = self.char_for_error(self.byte())
                self.i = start
                if _id_part(decoded):
                    raise self.invalid_token(prefix + word)

    def string(self, where: str) -> None:
        while True:
            c = self.byte(" in VALUE_STRING" if where == "string value" else ": was expecting closing '\"' for name")
            if c == 0x22:
                return
            if c == 0x5C:
                self.escape()
            elif c < 0x20:
                raise self.fail(
                    f"Illegal unquoted character ({describe(c)}): has to be escaped using backslash to be "
                    f"included in {where}",
                    back=1,
                )
            elif c >= 0x80:
                self.utf8(c)

    def escape(self) -> None:
        c = self.byte(" in character escape sequence")
        if c == 0x75:
            for _ in range(4):
                d = self.byte(" in character escape sequence")
                if d not in _HEX:
                    raise self.unexpected(d, "expected a hex-digit for character escape sequence")
        elif c not in _ESCAPES:
            raise self.fail(f"Unrecognized character escape {describe(self.char_for_error(c))}")

    def utf8(self, c: int) -> None:
        if c & 0xE0 == 0xC0:
            needed = 1
        elif c & 0xF0 == 0xE0:
            needed = 2
        elif c & 0xF8 == 0xF0:
            needed = 3
        else:
            raise self.fail(f"Invalid UTF-8 start byte 0x{c:x}")
        for _ in range(needed):
            d = self.byte(" in VALUE_STRING")
            if d & 0xC0 != 0x80:
                raise self.fail(f"Invalid UTF-8 middle byte 0x{d:x}")

    def digits(self) -> tuple[int, int]:
        """(how many digits, the byte after them or -1 at the end), that byte consumed."""
        n = 0
        while self.i < len(self.b):
            c = self.b[self.i]
            self.i += 1
            if not 0x30 <= c <= 0x39:
                return n, c
            n += 1
        return n, -1

    def number(self, c: int) -> None:
        if c == 0x2D:
            c = self.byte(" in a Number value")
            if not 0x30 <= c <= 0x39:
                if c == 0x49:  # -Infinity
                    self.token("Infinity", "-")
                    raise self.fail(
                        "Non-standard token '-Infinity': enable `JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS` to allow"
                    )
                raise self.fail(
                    f"Unexpected character ({describe(c)}) in numeric value: expected digit (0-9) to follow minus "
                    "sign, for valid numeric value",
                    back=1,
                )
        if c == 0x30 and self.i < len(self.b) and 0x30 <= self.b[self.i] <= 0x39:
            raise self.fail("Invalid numeric value: Leading zeroes not allowed")
        _, c = self.digits()
        if c == 0x2E:
            n, c = self.digits()
            if n == 0:
                c = 0x2E if c < 0 else c  # at the end Jackson names the point itself
                raise self.fail(
                    f"Unexpected character ({describe(c)}) in numeric value: Decimal point not followed by a digit",
                    back=1,
                )
        if c in (0x65, 0x45):
            c = self.byte(" in a Number value")
            if c in (0x2B, 0x2D):
                c = self.byte(" in a Number value")
            self.i -= 1
            n, c = self.digits()
            if n == 0:
                raise self.fail(
                    f"Unexpected character ({describe(c)}) in numeric value: Exponent indicator not followed by a "
                    "digit",
                    back=1,
                )
        if c == -1:
            return
        self.i -= 1  # pushed back: it belongs to what follows
        if not self.scopes and c not in (0x20, 0x09, 0x0D, 0x0A):
            self.i += 1
            raise self.unexpected(c, "Expected space separating root-level values")

    def container(self, opening: int) -> None:
        kind = "Object" if opening == 0x7B else "Array"
        closing = 0x7D if opening == 0x7B else 0x5D
        self.scopes.append((kind, self.line, self.i - self.row))
        first = True
        while True:
            c = self.skip_ws(None)
            if c < 0:
                _, line, column = self.scopes[-1]
                raise self.eof(
                    f": expected close marker for {kind} (start marker at {SOURCE}; line: {line}, column: {column}])"
                )
            if c in (0x5D, 0x7D):
                if c != closing:
                    _, line, column = self.scopes[-1]
                    raise self.fail(
                        f"Unexpected close marker '{chr(c)}': expected '{chr(closing)}' (for {kind} starting at "
                        f"{SOURCE}; line: {line}, column: {column}])",
                        back=1,
                    )
                self.scopes.pop()
                return
            if not first:
                if c != 0x2C:
                    raise self.unexpected(c, f"was expecting comma to separate {kind} entries")
                c = self.skip_ws(f" within/between {kind} entries")
            first = False
            if kind == "Object":
                if c != 0x22:
                    raise self.unexpected(self.char_for_error(c), "was expecting double-quote to start field name")
                self.string("name")
                c = self.skip_ws(f" within/between {kind} entries")
                if c != 0x3A:
                    raise self.unexpected(c, "was expecting a colon to separate field name and value")
                c = self.skip_ws(f" within/between {kind} entries")
            self.value(c)


def jackson_problem(payload: bytes) -> str:
    """Jackson's message (with its location) for a payload Python's json refused."""
    scanner = _Scanner(payload)
    try:
        c = scanner.skip_ws(None)
        if c < 0:
            return "No content to map due to end-of-input"
        if c in (0x5D, 0x7D):
            raise scanner.fail(
                f"Unexpected close marker '{chr(c)}': no open {'Object' if c == 0x7D else 'Array'} to close", back=1
            )
        scanner.value(c)
        c = scanner.skip_ws(None)
        if c >= 0:
            # Not recorded against AWS: a second root value, which Python's json refuses; worded as Jackson's
            # databind does with FAIL_ON_TRAILING_TOKENS, once the value's first token has been read.
            kind = _TOKEN_TYPES.get(c)
            if kind is None or kind.startswith(("VALUE_NUMBER", "VALUE_TRUE", "VALUE_FALSE", "VALUE_NULL")):
                scanner.value(c)  # a malformed token raises its own message
            raise _Bad(
                f"Trailing token (of type {kind}) found after value (bound as `com.fasterxml.jackson.databind."
                "JsonNode`): not allowed as per `DeserializationFeature.FAIL_ON_TRAILING_TOKENS`"
                f"\n at {scanner.at()}"
            )
    except _Bad as bad:
        return bad.message
    return "Invalid JSON"

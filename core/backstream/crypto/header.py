"""The v1 object header: layout constants, canonical context and stanza encoding, parsing.

Byte-by-byte specification in docs/format.md; every limit here is checked on read, before any work.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field

from backstream.errors import ConfigError, IntegrityError
from backstream.protocols import Stanza

MAGIC = b"\x89BSE\r\n\x1a\n"
"""Eight bytes that open every encrypted object (PNG-style: catches text-mode mangling)."""

VERSION = 1
CHUNK_LOG2 = 16
CHUNK_SIZE = 1 << CHUNK_LOG2
"""Plaintext bytes per payload chunk (only the final chunk may be shorter)."""

SALT_SIZE = 32
DATA_KEY_SIZE = 32
MAC_SIZE = 32
FIXED_SIZE = len(MAGIC) + 3 + SALT_SIZE + 2
"""Magic, version, suite, chunk log2, salt and the context length field."""

MAX_HEADER_SIZE = 64 * 1024
MAX_CONTEXT_SIZE = 8 * 1024
MAX_CONTEXT_ENTRIES = 32
MAX_CONTEXT_KEY = 64
MAX_CONTEXT_VALUE = 1024
MAX_STANZAS = 16
MAX_SCHEME = 64
MAX_KEY_REF = 2048
MAX_PARAMS = 32
MAX_PARAM_NAME = 32
MAX_PARAM_VALUE = 1024
MAX_WRAPPED_KEY = 8192

_CONTEXT_KEY = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_SCHEME = re.compile(r"[a-z0-9][a-z0-9-]*")
_PARAM_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")


@dataclass(frozen=True)
class Header:
    """A parsed (or freshly built) object header. ``raw`` is its exact bytes, MAC included."""

    suite_id: int
    salt: bytes
    context: Mapping[str, str]
    stanzas: tuple[Stanza, ...]
    mac: bytes
    preamble: bytes = field(repr=False)
    raw: bytes = field(repr=False)
    version: int = VERSION
    chunk_log2: int = CHUNK_LOG2

    @property
    def object_id(self) -> str:
        """A stable, non-secret id of the object (see ``object_id``); survives key rotation."""
        return object_id(self.preamble)

    @property
    def authenticated_part(self) -> bytes:
        """The bytes the header MAC covers: everything before the MAC."""
        return self.raw[: len(self.raw) - MAC_SIZE]


def object_id(preamble: bytes) -> str:
    """Hex of the first 16 bytes of SHA-256(preamble): names an object in the audit log."""
    return hashlib.sha256(preamble).hexdigest()[:32]


# --- canonical context ------------------------------------------------------------------------


def encode_context(context: Mapping[str, str]) -> bytes:
    """The canonical encoding of an object context (sorted keys, length-prefixed UTF-8).

    Providers bind exactly these bytes (AEAD associated data, KMS context); invalid keys or
    values raise ConfigError."""
    items = sorted((_context_key(key), _context_value(key, value)) for key, value in context.items())
    if len(items) > MAX_CONTEXT_ENTRIES:
        raise ConfigError(f"the object context has {len(items)} entries; at most {MAX_CONTEXT_ENTRIES} are allowed")
    out = bytearray([len(items)])
    for key, value in items:
        out += bytes([len(key)]) + key + len(value).to_bytes(2, "big") + value
    if len(out) > MAX_CONTEXT_SIZE:
        raise ConfigError(f"the object context encodes to {len(out)} bytes; at most {MAX_CONTEXT_SIZE} are allowed")
    return bytes(out)


def _context_key(key: str) -> bytes:
    if not isinstance(key, str) or len(key) > MAX_CONTEXT_KEY or not _CONTEXT_KEY.fullmatch(key):
        raise ConfigError(f"bad context key {key!r}: use 1-{MAX_CONTEXT_KEY} characters of a-z 0-9 _ . -")
    return key.encode("ascii")


def _context_value(key: str, value: str) -> bytes:
    if not isinstance(value, str):
        raise ConfigError(f"context value for {key!r} must be a string")
    encoded = value.encode("utf-8")
    if len(encoded) > MAX_CONTEXT_VALUE:
        raise ConfigError(f"context value for {key!r} is longer than {MAX_CONTEXT_VALUE} bytes")
    return encoded


def decode_context(data: bytes) -> dict[str, str]:
    """Parse a canonical context; anything non-canonical raises IntegrityError."""
    cursor = _Cursor(data, complete=True)
    count = cursor.u8()
    if count > MAX_CONTEXT_ENTRIES:
        raise IntegrityError(f"corrupt header: {count} context entries (limit {MAX_CONTEXT_ENTRIES})")
    context: dict[str, str] = {}
    previous = b""
    for _ in range(count):
        key = cursor.take(cursor.u8())
        value = cursor.take(cursor.u16())
        text_key = _ascii(key, _CONTEXT_KEY, MAX_CONTEXT_KEY, "context key")
        if previous and key <= previous:
            raise IntegrityError("corrupt header: context keys are not in strictly ascending order")
        if len(value) > MAX_CONTEXT_VALUE:
            raise IntegrityError(f"corrupt header: context value for {text_key!r} is too long")
        context[text_key] = _utf8(value, "context value")
        previous = key
    if cursor.remaining:
        raise IntegrityError("corrupt header: bytes after the last context entry")
    return context


# --- stanzas ----------------------------------------------------------------------------------


def encode_stanza(stanza: Stanza) -> bytes:
    """The header encoding of one stanza; a stanza outside the v1 limits raises ConfigError."""
    scheme = stanza.scheme
    if not isinstance(scheme, str) or len(scheme) > MAX_SCHEME or not _SCHEME.fullmatch(scheme):
        raise ConfigError(f"bad stanza scheme {scheme!r}: use 1-{MAX_SCHEME} characters of a-z 0-9 -")
    key_ref = stanza.key_ref.encode("utf-8")
    if len(key_ref) > MAX_KEY_REF:
        raise ConfigError(f"key reference of {scheme!r} stanza is longer than {MAX_KEY_REF} bytes")
    params = sorted(stanza.params.items())
    if len(params) > MAX_PARAMS:
        raise ConfigError(f"{scheme!r} stanza has more than {MAX_PARAMS} parameters")
    wrapped = bytes(stanza.wrapped_key)
    if not 1 <= len(wrapped) <= MAX_WRAPPED_KEY:
        raise ConfigError(f"{scheme!r} stanza wrapped key must be 1-{MAX_WRAPPED_KEY} bytes, not {len(wrapped)}")
    out = bytearray([len(scheme)]) + scheme.encode("ascii")
    out += len(key_ref).to_bytes(2, "big") + key_ref
    out.append(len(params))
    for name, value in params:
        if len(name) > MAX_PARAM_NAME or not _PARAM_NAME.fullmatch(name):
            raise ConfigError(f"bad parameter name {name!r} in {scheme!r} stanza")
        encoded = value.encode("utf-8")
        if len(encoded) > MAX_PARAM_VALUE:
            raise ConfigError(f"parameter {name!r} of {scheme!r} stanza is longer than {MAX_PARAM_VALUE} bytes")
        out += bytes([len(name)]) + name.encode("ascii") + len(encoded).to_bytes(2, "big") + encoded
    out += len(wrapped).to_bytes(2, "big") + wrapped
    return bytes(out)


def _decode_stanza(cursor: _Cursor) -> Stanza:
    scheme = _ascii(cursor.take(cursor.u8()), _SCHEME, MAX_SCHEME, "stanza scheme")
    key_ref_bytes = cursor.take(cursor.u16())
    if len(key_ref_bytes) > MAX_KEY_REF:
        raise IntegrityError(f"corrupt header: key reference longer than {MAX_KEY_REF} bytes")
    key_ref = _utf8(key_ref_bytes, "key reference")
    count = cursor.u8()
    if count > MAX_PARAMS:
        raise IntegrityError(f"corrupt header: stanza with {count} parameters (limit {MAX_PARAMS})")
    params: dict[str, str] = {}
    previous = b""
    for _ in range(count):
        name = cursor.take(cursor.u8())
        value = cursor.take(cursor.u16())
        text_name = _ascii(name, _PARAM_NAME, MAX_PARAM_NAME, "stanza parameter name")
        if previous and name <= previous:
            raise IntegrityError("corrupt header: stanza parameters are not in strictly ascending order")
        if len(value) > MAX_PARAM_VALUE:
            raise IntegrityError(f"corrupt header: stanza parameter {text_name!r} is too long")
        params[text_name] = _utf8(value, "stanza parameter")
        previous = name
    wrapped = cursor.take(cursor.u16())
    if not 1 <= len(wrapped) <= MAX_WRAPPED_KEY:
        raise IntegrityError(f"corrupt header: wrapped key of {len(wrapped)} bytes")
    return Stanza(scheme=scheme, key_ref=key_ref, params=params, wrapped_key=wrapped)


# --- whole header -----------------------------------------------------------------------------


def encode_preamble(suite_id: int, salt: bytes, context: Mapping[str, str]) -> bytes:
    """Magic, version, suite, chunk log2, salt and context: the part no rotation may change."""
    if not 0 < suite_id < 256:
        raise ConfigError(f"cipher suite id must be 1-255, not {suite_id}")
    if len(salt) != SALT_SIZE:
        raise ConfigError(f"stream salt must be {SALT_SIZE} bytes")
    encoded = encode_context(context)
    return MAGIC + bytes([VERSION, suite_id, CHUNK_LOG2]) + salt + len(encoded).to_bytes(2, "big") + encoded


def assemble_header(preamble: bytes, stanzas: Sequence[Stanza], mac_key: bytes) -> Header:
    """Append the stanzas and the HMAC-SHA256 header MAC (keyed with ``mac_key``) to a preamble."""
    if not 1 <= len(stanzas) <= MAX_STANZAS:
        raise ConfigError(f"an object needs 1-{MAX_STANZAS} key stanzas, not {len(stanzas)}")
    body = preamble + bytes([len(stanzas)]) + b"".join(encode_stanza(s) for s in stanzas)
    mac = hmac.new(mac_key, body, hashlib.sha256).digest()
    raw = body + mac
    if len(raw) > MAX_HEADER_SIZE:
        raise ConfigError(f"the header would be {len(raw)} bytes; at most {MAX_HEADER_SIZE} are allowed")
    header = parse_header(raw)
    return header


def parse_header(data: bytes) -> Header:
    """Parse a complete header (exactly its bytes); any violation raises IntegrityError."""
    header = _parse(_Cursor(data, complete=True))
    if len(header.raw) != len(data):
        raise IntegrityError("corrupt header: bytes after the header MAC")
    return header


async def read_header(stream: AsyncIterator[bytes]) -> tuple[Header, bytes]:
    """Read a header from the front of a byte stream; returns it and the bytes read past it.

    Reads no more than the header needs plus one chunk, and never more than MAX_HEADER_SIZE
    bytes of header: oversized or truncated headers raise IntegrityError."""
    buffer = bytearray()
    while True:
        try:
            header = _parse(_Cursor(bytes(buffer), complete=False))
        except _Incomplete:
            if len(buffer) > MAX_HEADER_SIZE:
                raise IntegrityError(f"corrupt header: longer than {MAX_HEADER_SIZE} bytes") from None
            try:
                chunk = await anext(stream)
            except StopAsyncIteration:
                if not buffer:
                    raise IntegrityError("not a backstream encrypted object: the input is empty") from None
                raise IntegrityError("truncated object: the input ends inside the header") from None
            buffer += chunk
            continue
        return header, bytes(buffer[len(header.raw) :])


def _parse(cursor: _Cursor) -> Header:
    magic = cursor.take(len(MAGIC))
    if magic != MAGIC:
        raise IntegrityError("not a backstream encrypted object (bad magic bytes)")
    version = cursor.u8()
    if version != VERSION:
        raise IntegrityError(
            f"unsupported encrypted format version {version} (this backstream reads version {VERSION})"
        )
    suite_id = cursor.u8()
    chunk_log2 = cursor.u8()
    if chunk_log2 != CHUNK_LOG2:
        raise IntegrityError(f"unsupported chunk size 2^{chunk_log2} (version 1 uses 2^{CHUNK_LOG2})")
    salt = cursor.take(SALT_SIZE)
    context_length = cursor.u16()
    if context_length > MAX_CONTEXT_SIZE:
        raise IntegrityError(f"corrupt header: context of {context_length} bytes (limit {MAX_CONTEXT_SIZE})")
    context = decode_context(cursor.take(context_length))
    preamble_end = cursor.offset
    count = cursor.u8()
    if not 1 <= count <= MAX_STANZAS:
        raise IntegrityError(f"corrupt header: {count} key stanzas (1-{MAX_STANZAS} allowed)")
    stanzas = tuple(_decode_stanza(cursor) for _ in range(count))
    mac = cursor.take(MAC_SIZE)
    if cursor.offset > MAX_HEADER_SIZE:
        raise IntegrityError(f"corrupt header: longer than {MAX_HEADER_SIZE} bytes")
    data = cursor.data
    return Header(
        suite_id=suite_id,
        salt=salt,
        context=context,
        stanzas=stanzas,
        mac=mac,
        preamble=data[:preamble_end],
        raw=data[: cursor.offset],
        version=version,
        chunk_log2=chunk_log2,
    )


class _Incomplete(Exception):
    """More input is needed to parse the header."""


class _Cursor:
    def __init__(self, data: bytes, *, complete: bool) -> None:
        self.data = data
        self.offset = 0
        self._complete = complete

    @property
    def remaining(self) -> int:
        return len(self.data) - self.offset

    def take(self, size: int) -> bytes:
        end = self.offset + size
        if end > len(self.data):
            if self._complete:
                raise IntegrityError("truncated header")
            if end > MAX_HEADER_SIZE:
                raise IntegrityError(f"corrupt header: longer than {MAX_HEADER_SIZE} bytes")
            raise _Incomplete
        piece = self.data[self.offset : end]
        self.offset = end
        return piece

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")


def _ascii(data: bytes, pattern: re.Pattern[str], limit: int, what: str) -> str:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise IntegrityError(f"corrupt header: {what} is not ASCII") from None
    if len(text) > limit or not pattern.fullmatch(text):
        raise IntegrityError(f"corrupt header: bad {what} {text!r}")
    return text


def _utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise IntegrityError(f"corrupt header: {what} is not UTF-8") from None

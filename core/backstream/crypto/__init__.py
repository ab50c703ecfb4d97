"""The encrypted object format v1 (docs/format.md): header, STREAM payload, envelope keys, audit.

Cipher suites and key providers are plugins; this package is the format they plug into.
"""

from backstream.crypto.aead import CryptographyAead
from backstream.crypto.audit import AUDIT_ENV, AuditLog, default_audit_path
from backstream.crypto.envelope import (
    Decryption,
    Encryptor,
    Rewrapped,
    build_object_header,
    cipher_for,
    configure_provider,
    key_providers,
    new_encryptor,
    open_encrypted,
    rewrap_encrypted,
    scheme_of,
)
from backstream.crypto.header import (
    CHUNK_SIZE,
    MAGIC,
    VERSION,
    Header,
    decode_context,
    encode_context,
    parse_header,
    read_header,
)
from backstream.crypto.kdf import (
    ARGON2ID_DEFAULTS,
    SCRYPT_DEFAULTS,
    KdfParams,
    check_kdf_params,
    derive_passphrase_key,
    new_kdf_params,
)
from backstream.crypto.passphrase import PASSPHRASE_ENV, read_passphrase
from backstream.crypto.stream import (
    SEALED_CHUNK_SIZE,
    TAG_SIZE,
    StreamDecryptor,
    StreamEncryptor,
    chunk_nonce,
    header_mac_key,
    payload_key,
)

__all__ = [
    "ARGON2ID_DEFAULTS",
    "AUDIT_ENV",
    "CHUNK_SIZE",
    "MAGIC",
    "PASSPHRASE_ENV",
    "SCRYPT_DEFAULTS",
    "SEALED_CHUNK_SIZE",
    "TAG_SIZE",
    "VERSION",
    "AuditLog",
    "CryptographyAead",
    "Decryption",
    "Encryptor",
    "Header",
    "KdfParams",
    "Rewrapped",
    "StreamDecryptor",
    "StreamEncryptor",
    "build_object_header",
    "check_kdf_params",
    "chunk_nonce",
    "cipher_for",
    "configure_provider",
    "decode_context",
    "default_audit_path",
    "derive_passphrase_key",
    "encode_context",
    "header_mac_key",
    "key_providers",
    "new_encryptor",
    "new_kdf_params",
    "open_encrypted",
    "parse_header",
    "payload_key",
    "read_header",
    "read_passphrase",
    "rewrap_encrypted",
    "scheme_of",
]

"""The defaults a user gets without options, in one place: every command, job and archive reads them here."""

from __future__ import annotations

DEFAULT_COMPRESSION = "zstd:3"
"""Compressor and level of backups, WAL and binlog archives (``--compress``)."""
DEFAULT_CIPHER = "chacha20-poly1305"
"""Cipher suite of encrypted objects (``--cipher``): fast without AES instructions, and misuse-resistant
enough for a random 96-bit nonce per object."""

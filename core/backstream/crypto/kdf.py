"""Passphrase key derivation (Argon2id by default, scrypt as an option) with capped parameters.

Parameters travel as ``str -> str`` maps (stanza params, keystore entries) and are checked before any work.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from backstream.errors import BackstreamError, ConfigError, IntegrityError

ARGON2ID_DEFAULTS: Mapping[str, int] = {"t": 3, "m": 64 * 1024, "p": 4}
"""Argon2id: t passes, m KiB of memory (64 MiB), p lanes."""

SCRYPT_DEFAULTS: Mapping[str, int] = {"ln": 18, "r": 8, "p": 1}
"""scrypt: N = 2^ln, block size r, parallelism p (256 MiB of memory)."""

KDFS = ("argon2id", "scrypt")
SALT_SIZE = 16

_ARGON2_LOCK = threading.Lock()
"""Serialises Argon2id runs: two concurrent derivations in different threads were seen to hang
forever (cryptography 50 / OpenSSL 4.0.3). Runs are ~0.2 s, so the lock costs little."""

MAX_MEMORY_BYTES = 1 << 30
"""No stanza or keystore may ask for more than 1 GiB of KDF memory."""
MAX_ARGON2_T = 16
MAX_ARGON2_P = 16
MAX_ARGON2_WORK = 4 << 20
"""Upper bound of t * m (KiB): e.g. t=4 at 1 GiB, or t=16 at 256 MiB."""
MAX_SCRYPT_LN = 20
MAX_SCRYPT_R = 32
MAX_SCRYPT_P = 16
MAX_SCRYPT_WORK = 1 << 25
"""Upper bound of p * r * 2^ln (4 times the work of ln=20, r=8, p=1)."""

_DECIMAL = re.compile(r"[1-9][0-9]{0,9}")
_HEX = re.compile(r"(?:[0-9a-f]{2})+")


@dataclass(frozen=True)
class KdfParams:
    """Checked KDF parameters (from ``check_kdf_params``)."""

    kdf: str
    salt: bytes
    t: int = 0
    m: int = 0
    ln: int = 0
    r: int = 0
    p: int = 0

    def as_params(self) -> dict[str, str]:
        """The ``str -> str`` form stored in stanzas and keystores."""
        if self.kdf == "argon2id":
            return {"kdf": "argon2id", "salt": self.salt.hex(), "t": str(self.t), "m": str(self.m), "p": str(self.p)}
        return {"kdf": "scrypt", "salt": self.salt.hex(), "ln": str(self.ln), "r": str(self.r), "p": str(self.p)}


def new_kdf_params(kdf: str = "argon2id", overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Parameters for a new passphrase key: the defaults of ``kdf`` (with explicit overrides,
    e.g. lower Argon2 costs for tests) and a fresh random salt. Bad values raise ConfigError."""
    if kdf not in KDFS:
        raise ConfigError(f"unknown passphrase KDF {kdf!r} (known: {', '.join(KDFS)})")
    defaults = ARGON2ID_DEFAULTS if kdf == "argon2id" else SCRYPT_DEFAULTS
    unknown = set(overrides or {}) - set(defaults)
    if unknown:
        raise ConfigError(f"unknown {kdf} parameter(s): {', '.join(sorted(unknown))} (known: {', '.join(defaults)})")
    params = {"kdf": kdf, "salt": os.urandom(SALT_SIZE).hex()}
    params.update({name: str(value) for name, value in defaults.items()})
    params.update(overrides or {})
    check_kdf_params(params, error=ConfigError)
    return params


def check_kdf_params(params: Mapping[str, str], *, error: type[BackstreamError] = IntegrityError) -> KdfParams:
    """Validate stored KDF parameters against the caps; nothing is derived here.

    Raises ``error`` (IntegrityError for parameters read from an object) for unknown KDFs,
    malformed numbers, or work factors above the caps (hostile headers are refused up front)."""
    kdf = params.get("kdf", "")
    if kdf not in KDFS:
        raise error(f"unknown passphrase KDF {kdf!r} (known: {', '.join(KDFS)})")
    expected = {"kdf", "salt", *(ARGON2ID_DEFAULTS if kdf == "argon2id" else SCRYPT_DEFAULTS)}
    if set(params) != expected:
        raise error(f"{kdf} parameters must be exactly {', '.join(sorted(expected))}")
    salt_hex = params["salt"]
    if not _HEX.fullmatch(salt_hex) or not SALT_SIZE <= len(salt_hex) // 2 <= 64:
        raise error(f"{kdf} salt must be {SALT_SIZE}-64 bytes of lowercase hex")
    numbers = {name: _number(kdf, name, value, error) for name, value in params.items() if name not in ("kdf", "salt")}
    salt = bytes.fromhex(salt_hex)
    if kdf == "argon2id":
        t, m, p = numbers["t"], numbers["m"], numbers["p"]
        if t > MAX_ARGON2_T or p > MAX_ARGON2_P:
            raise error(f"argon2id t={t}, p={p} exceed the limits t<={MAX_ARGON2_T}, p<={MAX_ARGON2_P}; refusing")
        if m * 1024 > MAX_MEMORY_BYTES:
            raise error(f"argon2id asks for {m} KiB of memory (limit {MAX_MEMORY_BYTES // 1024} KiB); refusing")
        if m < 8 * p:
            raise error(f"argon2id memory m={m} KiB must be at least 8 * p = {8 * p}")
        if t * m > MAX_ARGON2_WORK:
            raise error(f"argon2id work t*m = {t * m} exceeds the limit {MAX_ARGON2_WORK}; refusing")
        return KdfParams(kdf="argon2id", salt=salt, t=t, m=m, p=p)
    ln, r, p = numbers["ln"], numbers["r"], numbers["p"]
    if ln > MAX_SCRYPT_LN or r > MAX_SCRYPT_R or p > MAX_SCRYPT_P:
        raise error(
            f"scrypt ln={ln}, r={r}, p={p} exceed the limits ln<={MAX_SCRYPT_LN}, r<={MAX_SCRYPT_R}, "
            f"p<={MAX_SCRYPT_P}; refusing"
        )
    if 128 * r * (1 << ln) > MAX_MEMORY_BYTES:
        raise error(f"scrypt asks for {128 * r * (1 << ln) >> 20} MiB of memory (limit 1024 MiB); refusing")
    if p * r * (1 << ln) > MAX_SCRYPT_WORK:
        raise error(f"scrypt work p*r*2^ln exceeds the limit {MAX_SCRYPT_WORK}; refusing")
    return KdfParams(kdf="scrypt", salt=salt, ln=ln, r=r, p=p)


def derive_passphrase_key(passphrase: bytes, params: Mapping[str, str] | KdfParams) -> bytes:
    """The 32-byte key derived from ``passphrase`` with checked parameters.

    CPU- and memory-heavy by design (about 0.2 s and 64 MiB with the defaults): call it in a
    worker thread (``anyio.to_thread.run_sync``), never on the event loop."""
    checked = params if isinstance(params, KdfParams) else check_kdf_params(params)
    if checked.kdf == "argon2id":
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

        with _ARGON2_LOCK:
            return Argon2id(
                salt=checked.salt, length=32, iterations=checked.t, lanes=checked.p, memory_cost=checked.m
            ).derive(passphrase)
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=checked.salt, length=32, n=1 << checked.ln, r=checked.r, p=checked.p).derive(passphrase)


def _number(kdf: str, name: str, value: str, error: type[BackstreamError]) -> int:
    if not _DECIMAL.fullmatch(value):
        raise error(f"{kdf} parameter {name}={value!r} must be a positive decimal integer")
    return int(value)

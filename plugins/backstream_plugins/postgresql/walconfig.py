"""Where ``wal-push`` / ``wal-fetch`` find their settings: a small TOML file and BACKSTREAM_* variables.

Precedence: command-line flags, then environment variables, then the config file (docs/pitr.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from backstream import DEFAULT_COMPRESSION, ConfigError

CONFIG_ENV = "BACKSTREAM_CONFIG"
REPO_ENV = "BACKSTREAM_REPO"
COMPRESS_ENV = "BACKSTREAM_WAL_COMPRESS"
ENCRYPT_ENV = "BACKSTREAM_WAL_ENCRYPT"
CIPHER_ENV = "BACKSTREAM_CIPHER"
PASSPHRASE_FILE_ENV = "BACKSTREAM_PASSPHRASE_FILE"
KEYSTORE_ENV = "BACKSTREAM_KEYSTORE"
DEFAULT_WAL_COMPRESSION = DEFAULT_COMPRESSION
_KEYS = {"repo", "compress", "encrypt", "cipher", "passphrase_file", "keystore", "storage_options", "prefetch"}


@dataclass(frozen=True)
class WalConfig:
    """Settings of the WAL archive commands."""

    repo: str
    compress: str = DEFAULT_WAL_COMPRESSION
    encrypt: tuple[str, ...] = ()
    cipher: str | None = None
    provider_options: dict[str, str] = field(default_factory=dict)
    storage_options: dict[str, Any] = field(default_factory=dict)
    prefetch: int = 0

    def to_toml(self) -> str:
        """The config file form (for the restore_command of a restored data directory)."""
        lines = [f"repo = {_quote(self.repo)}", f"compress = {_quote(self.compress)}"]
        if self.encrypt:
            lines.append("encrypt = [" + ", ".join(_quote(ref) for ref in self.encrypt) + "]")
        if self.cipher:
            lines.append(f"cipher = {_quote(self.cipher)}")
        if self.provider_options.get("passphrase_file"):
            lines.append(f"passphrase_file = {_quote(self.provider_options['passphrase_file'])}")
        if self.provider_options.get("keystore"):
            paths = self.provider_options["keystore"].split(os.pathsep)
            lines.append("keystore = [" + ", ".join(_quote(p) for p in paths) + "]")
        if self.prefetch:
            lines.append(f"prefetch = {self.prefetch}")
        if self.storage_options:
            lines.append("\n[storage_options]")
            lines += [f"{key} = {_quote(str(value))}" for key, value in sorted(self.storage_options.items())]
        return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def absolute_repo(url: str, base: str | None = None) -> str:
    """A repository given as a local path (``~``, relative, or ``file://``), made absolute: PostgreSQL
    runs archive and restore commands from inside its data directory, where a relative path means
    something else. ``base`` is what a relative path is relative to (default: the working directory)."""
    path = url[len("file://") :] if url.startswith("file://") else url
    if "://" in path:
        return url
    path = os.path.expanduser(path)
    return os.path.abspath(os.path.join(base, path) if base else path)


def load_wal_config(
    *, config_file: str | None = None, repo: str | None = None, environment: Mapping[str, str] | None = None
) -> WalConfig:
    """Merge the config file (``config_file`` or $BACKSTREAM_CONFIG), the environment (default:
    ``os.environ``) and ``repo``. A relative local repository in the file is relative to the file."""
    data: dict[str, Any] = {}
    env = os.environ if environment is None else environment
    path = config_file or env.get(CONFIG_ENV)
    if path:
        import tomllib

        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except OSError as exc:
            raise ConfigError(f"cannot read the backstream config file {path}: {exc.strerror or exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
        unknown = set(data) - _KEYS
        if unknown:
            raise ConfigError(
                f"{path}: unknown setting(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(_KEYS))})"
            )
    in_file = data.get("repo")
    if in_file and path:
        in_file = absolute_repo(str(in_file), os.path.dirname(os.path.abspath(path)))
    url = repo or env.get(REPO_ENV) or in_file
    if not url:
        raise ConfigError(
            f"no repository given: pass --repo URL, set {REPO_ENV}, or name it in a config file ({CONFIG_ENV})"
        )
    encrypt_raw: Any = env.get(ENCRYPT_ENV)
    if encrypt_raw is not None:
        encrypt = tuple(ref for ref in encrypt_raw.replace(",", " ").split() if ref)
    else:
        raw = data.get("encrypt") or ()
        encrypt = tuple(str(ref) for ref in ([raw] if isinstance(raw, str) else raw))
    provider: dict[str, str] = {}
    passphrase_file = env.get(PASSPHRASE_FILE_ENV) or data.get("passphrase_file")
    if passphrase_file:
        provider["passphrase_file"] = str(passphrase_file)
    keystore: Any = env.get(KEYSTORE_ENV) or data.get("keystore")
    if keystore:
        paths = keystore.split(os.pathsep) if isinstance(keystore, str) else [str(p) for p in keystore]
        provider["keystore"] = os.pathsep.join(os.path.abspath(p) for p in paths)
    try:
        prefetch = int(env.get("BACKSTREAM_WAL_PREFETCH") or data.get("prefetch") or 0)
    except ValueError:
        raise ConfigError("prefetch must be an integer number of segments") from None
    return WalConfig(
        repo=absolute_repo(str(url)),
        compress=str(env.get(COMPRESS_ENV) or data.get("compress") or DEFAULT_WAL_COMPRESSION),
        encrypt=encrypt,
        cipher=env.get(CIPHER_ENV) or data.get("cipher") or None,
        provider_options=provider,
        storage_options=dict(data.get("storage_options") or {}),
        prefetch=max(0, prefetch),
    )

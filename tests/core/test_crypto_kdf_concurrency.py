"""Concurrent passphrase derivations finish: Argon2id runs are serialised across threads.

Two unserialised Argon2id derivations in different threads were seen to hang forever.
"""

from __future__ import annotations

import threading

from backstream.crypto.kdf import derive_passphrase_key

PARAMS = {"kdf": "argon2id", "salt": "00" * 16, "t": "1", "m": "8192", "p": "4"}


def test_argon2id_derivations_in_parallel_threads_all_finish_with_the_same_key() -> None:
    results: list[bytes] = []

    def derive() -> None:
        results.append(derive_passphrase_key(b"correct horse", PARAMS))

    threads = [threading.Thread(target=derive, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a derivation hung"
    assert len(results) == 4 and len(set(results)) == 1

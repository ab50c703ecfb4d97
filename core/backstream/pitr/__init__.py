"""PostgreSQL point-in-time recovery: the WAL archive (wal-push/wal-fetch), targets and restores to a data directory.

Modules are imported lazily by the commands that need them, so ``wal-push`` stays quick.
"""

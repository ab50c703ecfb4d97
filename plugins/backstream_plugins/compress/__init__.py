"""Built-in compressor plugins: none, gzip, bz2, xz, zstd, lz4.

Each emits the standard format its command-line tool reads, and reads that tool's output.
"""

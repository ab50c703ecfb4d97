"""Built-in cipher suites for the encrypted object format: chacha20-poly1305 and aes-256-gcm.

A suite supplies only the keyed AEAD; the STREAM chunking, header and keys are backstream.crypto's.
"""

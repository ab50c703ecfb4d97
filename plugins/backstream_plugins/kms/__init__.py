"""Built-in key providers (``backstream_register_kms``), registered under their key-reference scheme.

Each wraps per-object data keys (envelope encryption); see docs/keys.md for references and options.
"""

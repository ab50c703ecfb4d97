"""Built-in storage plugins.

``fsspec_store`` serves every fsspec protocol (file, memory, s3, gcs, az, ...).
"""

"""Verification check plugins, one module per database engine (``register_checks``).

Each registers under its source plugin's name and describes databases the same way at backup time and after a restore.
"""

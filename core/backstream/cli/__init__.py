"""The ``backstream`` command line: one module per command, wired together in ``main``.

Errors a user can cause end as one line on stderr and a non-zero exit, never a traceback.
"""

"""``backstream bench``: measure codec x cipher combinations on sample dump text or a real file.

``sample`` makes the deterministic sample; ``runner`` runs and measures one combination per subprocess.
"""

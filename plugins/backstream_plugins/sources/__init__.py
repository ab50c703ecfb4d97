"""Built-in database source plugins: sqlite (postgresql and mysql/mariadb in their own modules).

A source dumps a database to a byte stream and restores one from it, atomically toward its target.
"""

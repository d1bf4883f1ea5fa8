"""Encryption at rest: SQLCipher for the SQLite stores, AES-256-GCM for files with user text.

A workspace turns it on in ``[security]`` of its ``tuneloop.toml``; from then on every store
and every user-text file under that workspace is opened with the workspace's key, found from
the file's own path (:func:`keys.key_for`), so no caller has to carry a key around.
"""

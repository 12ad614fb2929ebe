"""The leaf layer: what every package needs, importing nothing of the project.

``errors`` (the user-error type), ``offline`` (the hub-off check), ``hashing`` (content
keys and file digests), ``gitinfo`` (commit and dirty flag), ``packages`` (the package
lists and their versions), ``rows`` (reading row files). Standard library only, so that
``tasks`` and ``leaderboards`` can use it without reaching up (tests/test_imports.py).
"""

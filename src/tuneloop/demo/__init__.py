"""The demo: synthetic Northwind Bank support traffic with known, planted problems.

The pipeline is only convincing when it can be checked: :mod:`tuneloop.demo.generate` writes
interactions, a held-out eval set and a ``truth.json`` that says which record carries which
planted phenomenon (PII, duplicates, eval leaks, junk, negative feedback), so the demo and the
tests can confirm that every one of them was caught and nothing else was.
"""

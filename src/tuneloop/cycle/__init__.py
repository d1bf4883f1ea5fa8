"""The loop: one cycle runs collect → ingest → curate → train → gate → release, resumably.

``run.py`` runs a cycle, ``stages/`` holds the stages (a module each, with its typed report),
``tuneloop.state.cycle`` what a cycle folder says, ``triggers.py`` (with ``drift.py`` and
``quality.py``) when a cycle is due.
"""

"""The loop: one cycle runs collect → ingest → curate → train → gate → release, resumably.

``run.py`` runs a cycle, ``stages.py`` holds the stages, ``state.py`` what a cycle folder
says, ``triggers.py`` (with ``drift.py`` and ``quality.py``) when a cycle is due.
"""

"""Curation: a list of small blocks between the training store and a dataset version."""

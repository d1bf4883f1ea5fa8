"""Standalone commands that work on plain JSONL files, without a workspace."""

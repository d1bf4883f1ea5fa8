"""Sphinx configuration for tuneloop's documentation: Markdown pages (MyST) in the furo theme.

Build with `make docs` (HTML in docs/_build/html); `make test` runs the strict check.
"""

project = "tuneloop"
author = "tuneloop authors"
copyright = "tuneloop authors"

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# `page.md#a-heading` links, as GitHub renders them, resolve to the heading's anchor.
myst_heading_anchors = 3

html_theme = "furo"
html_title = "tuneloop"

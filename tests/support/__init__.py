"""What the tests share: workspaces built from settings, the tiny model, data, a live server,
the real executable, the PostgreSQL server. A test module imports these, never another test
module (tests/test_boundaries.py checks it), so that each test file stands alone."""

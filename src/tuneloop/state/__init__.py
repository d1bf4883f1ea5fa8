"""What the loop keeps between commands and processes, below every reader of it.

The cycle's stage records (``cycle``), the serving log (``serving_log``), the canary's state
(``canary``) and the running server's address (``server_file``) are read by the report, the
server, the cycle runner and the CLI alike; keeping them here, under all of those, means no
reader imports the package that writes them.
"""

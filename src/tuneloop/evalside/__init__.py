"""The evaluation side: the only code that reads evaluation text."""

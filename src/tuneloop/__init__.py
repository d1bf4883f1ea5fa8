"""tuneloop: continuous fine-tuning for private LLMs, without eval leakage."""

__version__ = "0.1.0"

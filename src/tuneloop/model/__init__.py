"""The base model: loading any causal LM, recording exactly which weights were used."""

"""Serving: an OpenAI-compatible API over one base model and hot-swapped LoRA adapters.

The flow of one request: ``auth`` (API key → tenant and scopes) → ``router`` (the model asked
for, or production with the sticky canary split) → a backend (``embedded``: peft in process, the
default; ``vllm``: an engine with runtime LoRA loading) → ``chat`` (stream or collect) → ``log``
(the append-only serving log that ``tuneloop ingest --serving-log`` reads) and ``metrics``.
Beside it, ``follow`` keeps the served adapters equal to the registry's aliases, and
``canary`` judges the canary on the serving log and promotes or rolls it back.

The serving side never reads the eval store or the training store (a test checks the imports).
"""

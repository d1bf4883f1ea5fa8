"""The embedded backend: one base model in this process, LoRA adapters hot-swapped with peft.

Requests are batched at every decode step (iteration-level scheduling, as in Orca and vLLM): a
request that arrives while others are generating joins the running batch at the next step
instead of waiting for the whole batch to finish, and a finished or abandoned request leaves at
once. Rows of one batch may use different adapters (peft's ``adapter_names``), so a canary and
production share every forward pass. All model work happens on one worker thread; the event
loop only queues requests and relays tokens.
"""

from tuneloop.serve.embedded.backend import EmbeddedBackend

__all__ = ["EmbeddedBackend"]

"""A tiny Llama with a tiny byte-level BPE tokenizer, built in seconds, for training tests."""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "the card was lost yesterday and I need a new one",
    "please reset my password for the mobile app",
    "what is the fee for a wire transfer abroad",
    '{"intent": "card_lost", "priority": "high", "department": "cards"}',
    "thank you for contacting us, we are happy to help",
]
SPECIAL = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def build_tiny_model(folder: Path, seed: int = 0, scale: float = 1.0, context: int = 256) -> Path:
    """Save a ~100k-parameter Llama and its tokenizer to ``folder``; return it.

    ``scale`` multiplies every weight: at the default initialization greedy decoding repeats
    one token, at ``scale=20`` it produces varied tokens, which tests of decoding need.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    fast.chat_template = CHATML
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=context,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    if scale != 1.0:
        with torch.no_grad():
            for param in model.parameters():
                param.mul_(scale)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    fast.save_pretrained(folder)
    return folder


class TinyModels:
    """Tiny models built once per test session, one per set of build arguments, for tests to
    read (never to write into): building one takes seconds, loading it milliseconds."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._built: dict[tuple[float, int], Path] = {}

    def get(self, scale: float = 1.0, context: int = 256) -> Path:
        """The model :func:`build_tiny_model` makes with these arguments (seed 0)."""
        key = (scale, context)
        if key not in self._built:
            folder = self.folder / f"scale{scale:g}-context{context}"
            self._built[key] = build_tiny_model(folder, scale=scale, context=context)
        return self._built[key]

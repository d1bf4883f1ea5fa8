"""Training: LoRA on a pretrained base, loss on completions, packing, exact resume, replay."""

"""A tiny Llama and a BPE tokenizer built from a config on the fly (no hub), saved to a folder so
tests load them through the real `from_pretrained` path."""

from __future__ import annotations

import random
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_WORDS = ("apple banana cherry river mountain cloud stone green blue red quick slow bright dark model train "
          "data token layer weight learn adapt small large north south east west happy calm city village "
          "forest ocean what is the capital of france paris answer question user assistant system").split()


def corpus(n: int = 3000, seed: int = 0) -> list[str]:
    """Deterministic text for training the tokenizer."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(_WORDS) for _ in range(rng.randrange(4, 16))) for _ in range(n)]


def build_tiny(out: Path, *, hidden: int = 64, layers: int = 2, heads: int = 4, vocab: int = 600,
               seed: int = 0) -> Path:
    """Write a tokenizer and a randomly initialised Llama to `out`; returns `out`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out)
    if (out / "config.json").exists() and (out / "tokenizer.json").exists():
        return out
    specials = ["<|pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer=trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|pad|>",
                                 chat_template=CHAT_TEMPLATE, model_max_length=256)
    hf.save_pretrained(out)
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(hf), hidden_size=hidden, intermediate_size=hidden * 2,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                      max_position_embeddings=256, tie_word_embeddings=False, pad_token_id=hf.pad_token_id,
                      eos_token_id=hf.eos_token_id, bos_token_id=None)
    LlamaForCausalLM(cfg).save_pretrained(out)
    return out

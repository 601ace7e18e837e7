"""A tiny random-weight causal LM with a tokenizer built in code, for tests that need a real model.

Nothing is downloaded: the tokenizer is a byte-level BPE trained in-process on a few hundred words,
the model is a two-layer LlamaForCausalLM with seeded random weights. Its output is gibberish, but
it is deterministic and exercises the same code paths (chat template, padding, generate) as a real
model. Usage::

    from tests.fakes.tiny_model import build_tiny_model
    model_dir = build_tiny_model(tmp_path / "tiny")   # then load_model(str(model_dir))
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

# A small context so tests can build an over-long prompt cheaply.
CONTEXT_LENGTH = 256

_SPECIAL = ["<|pad|>", "<|bos|>", "<|eos|>"]

# Renders every turn as "<|role|>content<|eos|>", like ChatML with fewer tokens.
_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|{{ message['role'] }}|>{{ message['content'] }}{{ eos_token }}"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

_CORPUS = """
The quick brown fox jumps over the lazy dog. A model reads the text and writes an answer.
You are a helpful assistant. The user asks a question and the assistant replies with care.
Please answer with a JSON object that matches the schema. The capital of France is Paris.
Researchers run experiments on language models to measure how often they notice planted
instructions, whether they report them, and how the framing of a prompt changes behaviour.
Every response is judged by an evaluator who first reads the protocol, then scores a batch.
One two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen.
Monday Tuesday Wednesday Thursday Friday Saturday Sunday morning evening night today tomorrow.
system user assistant tool result name input schema type object string number boolean array.
Question: Was the text above written sincerely? Answer: Yes. Answer: No. Yes or No? Yes, No.
"""


def _train_tokenizer(context_length: int = CONTEXT_LENGTH) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on the corpus above and wrap it as a transformers tokenizer."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=_SPECIAL,
        # The full byte alphabet keeps every string encodable, whatever the corpus lacks.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([_CORPUS] * 3, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|bos|>",
        eos_token="<|eos|>",
        pad_token="<|pad|>",
        model_max_length=context_length,
        chat_template=_CHAT_TEMPLATE,
    )


def build_tiny_model(path: Path, context_length: int = CONTEXT_LENGTH, seed: int = 0) -> Path:
    """Build a tiny Llama model plus tokenizer into `path` (created if needed) and return it.

    The default context is small so that over-long prompts are cheap to build; whole-run tests
    pass a larger one to fit real protocol documents. The weights are drawn after
    `torch.manual_seed(seed)`: the random-weight control of a probe (truesight.validity) is the
    same draw from the same config, so a test of that control needs a seed other than the
    control's, or the control is this model itself.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer(context_length)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=context_length,
        # Wider than the usual 0.02 so logits are peaked: greedy argmax then does not flip on
        # float noise, which the batched-equals-solo test relies on.
        initializer_range=0.2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    # Random weights would often pick EOS first and end every reply at once; a zero logit row
    # keeps special tokens far below the top of the (peaked) distribution, so replies run on.
    with torch.no_grad():
        for token_id in tokenizer.all_special_ids:
            model.lm_head.weight[token_id].zero_()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path

"""A tiny GPT-2 with the truth of its statements planted in its hidden states, trained in seconds.

Statements are "<entity> is good" (true) and "<entity> is bad" (false). The model is trained for a
few steps as a language model on "<statement> True|False" with the right answer, so the truth value
is linearly present at the statement's last token, and the hidden state of an appended answer
token depends on whether it agrees with the statement: the contrast-pair structure CCS looks for.
Embeddings (layer 0) of the answer token carry no context, so CCS must fail there.
"""

from __future__ import annotations

import numpy as np
import torch

from mlsafety.monitoring.honesty.datasets.base import Statements
from mlsafety.monitoring.honesty.lm import LanguageModel, wrap_language_model
from mlsafety.monitoring.honesty.prompts import QUESTION, SYSTEM

N_ENTITIES = 24
TRUE_WORDS = ("good",)
FALSE_WORDS = ("bad",)


def planted_statements(n_entities: int = N_ENTITIES, seed: int = 0, name: str = "planted") -> Statements:
    """One true and one false statement per entity, words drawn at random."""
    rng = np.random.default_rng(seed)
    texts, labels, entities = [], [], []
    for entity in range(n_entities):
        true_word, false_word = TRUE_WORDS[rng.integers(len(TRUE_WORDS))], FALSE_WORDS[rng.integers(len(FALSE_WORDS))]
        texts += [f"e{entity} is {true_word}", f"e{entity} is {false_word}"]
        labels += [1, 0]
        entities += [f"e{entity}"] * 2
    return Statements(texts, np.array(labels), entities, name=name)


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "True", "False", "is", *TRUE_WORDS, *FALSE_WORDS]
    words += [f"e{i}" for i in range(N_ENTITIES)]
    prompt = " ".join([*SYSTEM.values(), QUESTION.format(statement=""), "Answer:"])
    words += sorted(set(prompt.replace("?", " ? ").replace(":", " : ").replace(".", " . ").replace(",", " , ").split()))
    vocab = {word: i for i, word in enumerate(dict.fromkeys(words))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]", eos_token="[PAD]")


def train_tiny_lm(n_steps: int = 30) -> LanguageModel:
    """A 2-layer GPT-2 language model of "<statement> True|False" (about a second on one core)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    tokenizer = _tokenizer()
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=4,
                        bos_token_id=0, eos_token_id=0, pad_token_id=0)
    model = GPT2LMHeadModel(config)
    rows = []
    for entity in range(N_ENTITIES):
        for truth, words in ((1, TRUE_WORDS), (0, FALSE_WORDS)):
            for word in words:
                rows.append(tokenizer(f"e{entity} is {word} {'True' if truth else 'False'}")["input_ids"])
    ids = torch.tensor(rows)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(n_steps):
        loss = model(input_ids=ids, labels=ids).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return wrap_language_model(model.eval(), tokenizer, name="tiny-gpt2")

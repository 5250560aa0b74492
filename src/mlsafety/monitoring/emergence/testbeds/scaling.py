"""A family of tiny GPT-2 models trained on algorithmic tasks, with per-example outputs at checkpoints.

The models are ``transformers.GPT2LMHeadModel`` built from ``GPT2Config`` (Radford et al. 2019,
"Language Models are Unsupervised Multitask Learners") over a character vocabulary, one model per
size, all trained with the same data, steps and seed on a mixture of tasks:

* ``addition``: ``"123+456="`` -> ``"0579"`` (3-digit operands, 4-digit zero-padded sum) -- the
  BIG-bench arithmetic of Schaeffer et al. (2023) in miniature;
* ``reversal``: ``"cadbe|"`` -> ``"ebdac"`` (5 letters from 10) -- needs position-based attention;
* ``modular``: ``"17*05%"`` -> ``"85"``, :math:`(a b) \bmod 97` of two 2-digit operands, a
  lookup-like task with no carry structure to learn digit by digit.

The loss is on answer tokens only. At each checkpoint every model answers a fixed evaluation set
greedily; the records hold the output, the target and the target's teacher-forced log-likelihood,
which is exactly the per-example run-table schema of :mod:`mlsafety.monitoring.emergence.schema`.
``transformers`` is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mlsafety.exceptions import InvalidParameterError, parameter_error

TASKS = ("addition", "reversal", "modular")
_LETTERS = "abcdefghij"
VOCAB = ["<pad>", *"0123456789", *_LETTERS, "+", "=", "|", "*", "%"]
_INDEX = {token: i for i, token in enumerate(VOCAB)}
# (n_embd, n_layer, n_head): about 4k to 150k parameters (~35x)
DEFAULT_SIZES: tuple[tuple[int, int, int], ...] = ((16, 1, 2), (24, 1, 2), (32, 1, 2), (32, 2, 2), (48, 2, 2),
                                                   (64, 3, 4))


def make_example(task: str, rng: np.random.Generator) -> tuple[str, str]:
    """One (prompt, answer) pair of ``task``."""
    if task == "addition":
        a, b = (int(v) for v in rng.integers(0, 1000, 2))
        return f"{a:03d}+{b:03d}=", f"{a + b:04d}"
    if task == "reversal":
        letters = "".join(rng.choice(list(_LETTERS), 5))
        return f"{letters}|", letters[::-1]
    if task == "modular":
        a, b = (int(v) for v in rng.integers(0, 100, 2))
        return f"{a:02d}*{b:02d}%", f"{(a * b) % 97:02d}"
    raise InvalidParameterError(f"unknown task {task!r}; choose from {', '.join(TASKS)}.")


def encode(text: str) -> list[int]:
    return [_INDEX[ch] for ch in text]


def decode(ids: list[int]) -> str:
    return "".join(VOCAB[i] for i in ids if i != 0)


def build_model(n_embd: int, n_layer: int, n_head: int, seed: int = 0) -> torch.nn.Module:
    """A tiny ``GPT2LMHeadModel`` over :data:`VOCAB` (no dropout)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(VOCAB), n_positions=16, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config)


def _batch(tasks: tuple[str, ...], size: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [make_example(tasks[int(rng.integers(len(tasks)))], rng) for _ in range(size)]
    length = max(len(p) + len(a) for p, a in pairs)
    ids = torch.zeros(size, length, dtype=torch.long)
    labels = torch.full((size, length), -100, dtype=torch.long)
    for row, (prompt, answer) in enumerate(pairs):
        tokens = encode(prompt + answer)
        ids[row, : len(tokens)] = torch.tensor(tokens)
        labels[row, len(prompt): len(tokens)] = torch.tensor(tokens[len(prompt):])
    return ids, labels


def _schedule(warmup: int, n_steps: int) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to 0 (as a LambdaLR factor)."""
    return lambda step: min((step + 1) / warmup, 0.5 * (1 + np.cos(np.pi * min(step / n_steps, 1.0))))


@torch.no_grad()
def evaluate(model: torch.nn.Module, prompts: list[str], answers: list[str]) -> list[dict[str, Any]]:
    """Greedy answers and teacher-forced target log-likelihoods (prompts of one task share a length)."""
    model.eval()
    prompt_ids = torch.tensor([encode(p) for p in prompts])
    answer_ids = torch.tensor([encode(a) for a in answers])
    full = torch.cat([prompt_ids, answer_ids], 1)
    logprobs = torch.log_softmax(model(full).logits.double(), -1)
    start = prompt_ids.shape[1]
    target_lp = logprobs[:, start - 1: -1].gather(2, answer_ids[..., None])[..., 0].sum(1)
    generated = prompt_ids
    for _ in range(answer_ids.shape[1]):
        next_token = model(generated).logits[:, -1].argmax(-1, keepdim=True)
        generated = torch.cat([generated, next_token], 1)
    outputs = [decode(row.tolist()) for row in generated[:, start:]]
    return [{"output": o, "target": a, "target_logprob": float(lp)}
            for o, a, lp in zip(outputs, answers, target_lp.tolist(), strict=True)]


@dataclass
class ScalingResult:
    """Records of a scaling run: one dict per (model, checkpoint step, task, example)."""

    records: list[dict[str, Any]]
    models: list[dict[str, Any]]
    settings: dict[str, Any]
    seconds: float = 0.0
    losses: dict[str, list[float]] = field(default_factory=dict)

    def final_records(self) -> list[dict[str, Any]]:
        """The last checkpoint of every model, with ``scale`` = parameter count (sorted by scale)."""
        last = max(r["step"] for r in self.records)
        rows = [dict(r) for r in self.records if r["step"] == last]
        return sorted(rows, key=lambda r: (r["scale"], r["task"], r["example"]))

    def step_records(self, name: str) -> list[dict[str, Any]]:
        """One model's checkpoints as a run table along training steps (``scale`` = step)."""
        rows = [{**r, "scale": r["step"]} for r in self.records if r["model"] == name]
        return sorted(rows, key=lambda r: (r["scale"], r["task"], r["example"]))

    def to_dict(self) -> dict[str, Any]:
        return {"models": self.models, "settings": self.settings, "seconds": self.seconds, "losses": self.losses,
                "records": self.records}


def train_family(sizes: tuple[tuple[int, int, int], ...] = DEFAULT_SIZES, *, tasks: tuple[str, ...] = TASKS,
                 n_steps: int = 1500, batch_size: int = 64, learning_rate: float = 3e-3, n_eval: int = 100,
                 n_checkpoints: int = 3, seed: int = 0,
                 callback: Callable[[ScalingResult], None] | None = None) -> ScalingResult:
    """Train one tiny GPT-2 per size on ``tasks`` and record per-example outputs at checkpoints.

    Parameters
    ----------
    sizes : tuple of (n_embd, n_layer, n_head)
        The family (at least 3 sizes, strictly increasing parameter counts).
    n_steps, batch_size, learning_rate : int, int, float
        AdamW training, the same for every size (cosine decay, 5 % warm-up).
    n_eval : int
        Evaluation examples per task (the same for every model and checkpoint).
    n_checkpoints : int
        Evaluations per model, evenly spaced, the last at ``n_steps``.
    callback : callable, optional
        Called with the partial result after each model (e.g. to write it to disk).
    """
    owner = "train_family"
    if len(sizes) < 3:
        raise parameter_error("sizes", owner, "at least 3 model sizes", len(sizes))
    for task in tasks:
        if task not in TASKS:
            raise parameter_error("tasks", owner, f"a subset of {TASKS}", task)
    for name, value in (("n_steps", n_steps), ("batch_size", batch_size), ("n_eval", n_eval),
                        ("n_checkpoints", n_checkpoints)):
        if not isinstance(value, int) or value < 1:
            raise parameter_error(name, owner, "an integer >= 1", value)
    eval_rng = np.random.default_rng(10_000 + seed)
    evaluation = {task: [make_example(task, eval_rng) for _ in range(n_eval)] for task in tasks}
    checkpoints = sorted({round(n_steps * (i + 1) / n_checkpoints) for i in range(n_checkpoints)})
    result = ScalingResult([], [], {"sizes": [list(s) for s in sizes], "tasks": list(tasks), "n_steps": n_steps,
                                    "batch_size": batch_size, "learning_rate": learning_rate, "n_eval": n_eval,
                                    "checkpoints": checkpoints, "seed": seed})
    start = time.process_time()
    previous = 0
    for n_embd, n_layer, n_head in sizes:
        name = f"d{n_embd}-l{n_layer}"
        model = build_model(n_embd, n_layer, n_head, seed)
        n_params = sum(p.numel() for p in model.parameters())
        if n_params <= previous:
            raise parameter_error("sizes", owner, "ordered by increasing parameter count", (n_embd, n_layer, n_head))
        previous = n_params
        optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(max(1, n_steps // 20), n_steps))
        rng = np.random.default_rng(seed)
        model_start = time.process_time()
        losses = []
        for step in range(1, n_steps + 1):
            model.train()
            ids, labels = _batch(tasks, batch_size, rng)
            loss = model(ids, labels=labels).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            if step in checkpoints:
                for task, pairs in evaluation.items():
                    rows = evaluate(model, [p for p, _ in pairs], [a for _, a in pairs])
                    for example, row in enumerate(rows):
                        result.records.append({"model": name, "scale": n_params, "step": step, "task": task,
                                               "example": example, **row})
        result.losses[name] = [float(np.mean(losses[i: i + 50])) for i in range(0, len(losses), 50)]
        result.models.append({"name": name, "n_embd": n_embd, "n_layer": n_layer, "n_head": n_head,
                              "n_params": n_params, "cpu_seconds": time.process_time() - model_start})
        result.seconds = time.process_time() - start
        if callback is not None:
            callback(result)
    return result

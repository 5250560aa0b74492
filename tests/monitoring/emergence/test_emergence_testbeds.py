"""The tiny GPT-2 scaling testbed: task generators, records schema, lazy transformers import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from mlsafety.exceptions import InvalidParameterError
from mlsafety.monitoring.emergence import table_from_records
from mlsafety.monitoring.emergence.testbeds.scaling import make_example, train_family


def test_task_generators() -> None:
    rng = np.random.default_rng(0)
    prompt, answer = make_example("addition", rng)
    a, b = prompt[:-1].split("+")
    assert int(answer) == int(a) + int(b) and len(answer) == 4
    prompt, answer = make_example("reversal", rng)
    assert answer == prompt[:-1][::-1]
    prompt, answer = make_example("modular", rng)
    a, b = prompt[:-1].split("*")
    assert int(answer) == int(a) * int(b) % 97
    with pytest.raises(InvalidParameterError):
        make_example("division", rng)


def test_tiny_family_records_make_a_run_table() -> None:
    torch.set_num_threads(1)
    result = train_family(((8, 1, 2), (12, 1, 2), (16, 1, 2)), tasks=("addition", "reversal"), n_steps=6,
                          batch_size=8, n_eval=4, n_checkpoints=3)
    assert len(result.records) == 3 * 3 * 2 * 4
    assert [m["n_params"] for m in result.models] == sorted(m["n_params"] for m in result.models)
    table = table_from_records(result.final_records())
    assert {m for _, m in table.curves} == {"exact_match", "per_token_accuracy", "token_edit_distance",
                                            "target_log_likelihood"}
    loglik = table.curves[("addition", "target_log_likelihood")]
    assert np.all(loglik.values < 0) and loglik.per_example.shape == (3, 4)
    steps = table_from_records(result.step_records("d8-l1"))
    assert list(steps.curves[("reversal", "exact_match")].scales) == [2, 4, 6]
    with pytest.raises(InvalidParameterError):
        train_family(((8, 1, 2), (8, 1, 2), (16, 1, 2)), n_steps=1, n_eval=2)


def test_import_does_not_load_transformers() -> None:
    code = "import sys, mlsafety.monitoring.emergence as e; print('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"

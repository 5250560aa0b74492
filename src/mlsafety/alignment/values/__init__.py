"""Value learning: utility models of human judgements, and how easily they are gamed.

Encoders (registered in :data:`mlsafety.registry.ENCODERS`): ``minilm`` (default,
all-MiniLM-L6-v2 from its wheel, offline), ``local`` (a model folder), ``hashing`` (fast,
deterministic), ``smollm2`` (hidden states of the offline SmolLM2-135M). Utility models:
:class:`UtilityModel` (linear / MLP head on frozen embeddings; Bradley–Terry on pairs or
regression on ratings), :class:`FineTunedUtility` (MiniLM fine-tuned end to end with the
Bradley–Terry loss), :class:`UtilityEnsemble` (conservative min). Data: the VADER human
ratings (:func:`load_vader`) and ETHICS files, plain or gzip (:func:`load_ethics`,
:func:`load_ethics_utilitarianism`, scored with :func:`ethics_pairwise`). Gaming:
:class:`GreedyTextOptimizer`.
"""

from mlsafety.alignment.values.cache import EmbeddingCache, text_hash
from mlsafety.alignment.values.encoder import TextEncoder, check_texts
from mlsafety.alignment.values.ensemble import UtilityEnsemble
from mlsafety.alignment.values.ethics import (
    EthicsClassifier,
    EthicsExamples,
    ethics_pairwise,
    ethics_root,
    group_exact_match,
    load_ethics,
    load_ethics_utilitarianism,
)
from mlsafety.alignment.values.finetune import FineTunedUtility
from mlsafety.alignment.values.goodhart import (
    GoodhartTrace,
    GreedyTextOptimizer,
    lexicon_judge,
    vocabulary_from_texts,
)
from mlsafety.alignment.values.hashing import HashingEncoder
from mlsafety.alignment.values.lm_encoder import LanguageModelEncoder
from mlsafety.alignment.values.metrics import (
    bootstrap_interval,
    evaluate_pairs,
    pair_calibration,
    pair_correctness,
    pairwise_accuracy,
    rank_correlations,
)
from mlsafety.alignment.values.pairs import Pairs, build_pairs, load_pair_file
from mlsafety.alignment.values.sentence_transformer import LocalEncoder, MiniLMEncoder
from mlsafety.alignment.values.synthetic import make_synthetic_preferences
from mlsafety.alignment.values.utility import UtilityModel, bradley_terry_loss
from mlsafety.alignment.values.vader import RatedTexts, fetch_vader, load_lexicon, load_vader

__all__ = [
    "EmbeddingCache", "EthicsClassifier", "EthicsExamples", "FineTunedUtility", "GoodhartTrace",
    "GreedyTextOptimizer", "HashingEncoder", "LanguageModelEncoder", "LocalEncoder", "MiniLMEncoder", "Pairs",
    "RatedTexts", "TextEncoder", "UtilityEnsemble", "UtilityModel", "bootstrap_interval", "bradley_terry_loss",
    "build_pairs", "check_texts", "ethics_pairwise", "ethics_root", "evaluate_pairs", "fetch_vader",
    "group_exact_match", "lexicon_judge", "load_ethics", "load_ethics_utilitarianism", "load_lexicon",
    "load_pair_file", "load_vader", "make_synthetic_preferences", "pair_calibration", "pair_correctness",
    "pairwise_accuracy", "rank_correlations", "text_hash", "vocabulary_from_texts",
]

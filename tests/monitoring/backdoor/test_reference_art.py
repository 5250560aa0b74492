"""Spectral Signatures against ART's implementation (adversarial-robustness-toolbox, an anchor)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlsafety.monitoring.backdoor import SpectralSignatures

poison = pytest.importorskip("art.defences.detector.poison")


def test_spectral_scores_match_art_on_centred_class_features() -> None:
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(200)
    features = torch.randn(600, 24, generator=generator, dtype=torch.float64) + 3 * labels[:, None]
    features[:20] += 4 * torch.randn(24, generator=generator, dtype=torch.float64)
    ours = SpectralSignatures().fit_features(features.float(), labels).scores_.double()
    for c in range(3):
        members = features[labels == c]
        # ART projects the *uncentred* features on the top singular vector of the centred ones
        # (|R_i . v|), while Tran et al.'s Algorithm 1 centres them ((R_i - mean) . v)^2; the two
        # agree when the features given to ART are already centred.
        centred = (members - members.mean(0)).numpy()
        art = poison.SpectralSignatureDefense.spectral_signature_scores(centred)[:, 0]
        np.testing.assert_allclose(ours[labels == c].numpy(), art**2, rtol=2e-3, atol=1e-4)

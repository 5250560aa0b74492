"""Safe model loading: safetensors, weights-only state dicts, TorchScript, entry points."""

from __future__ import annotations

import pytest
import torch

from mlsafety.exceptions import DataNotFoundError, InvalidInputError, UnsafeModelFileError
from mlsafety.models import Classifier, build_architecture, load_classifier, save_checkpoint


@pytest.fixture(scope="module")
def small_module() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_architecture("small_cnn", width=4).eval()


def _same(a: Classifier, b: Classifier) -> bool:
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    return torch.allclose(a.predict_logits(x), b.predict_logits(x), atol=1e-5)


def test_safetensors_roundtrip_with_metadata(tmp_path, small_module) -> None:
    original = Classifier(small_module, mean=[0.3], std=[0.4], class_names=list("abcdefghij"), input_shape=(1, 28, 28))
    path = save_checkpoint(original, tmp_path / "m.safetensors", "small_cnn", {"width": 4}, {"note": "x"})
    loaded = load_classifier(path)
    assert loaded.class_names == list("abcdefghij") and loaded.input_shape == (1, 28, 28)
    assert _same(original, loaded)


def test_state_dict_weights_only(tmp_path, small_module) -> None:
    path = tmp_path / "state.pt"
    torch.save(small_module.state_dict(), path)
    with pytest.raises(InvalidInputError, match="--architecture"):
        load_classifier(path)
    with pytest.raises(InvalidInputError, match="--normalization"):
        load_classifier(path, architecture="small_cnn", architecture_kwargs={"width": 4})
    loaded = load_classifier(path, architecture="small_cnn", architecture_kwargs={"width": 4}, normalization="none")
    assert _same(Classifier(small_module), loaded)
    normalised = load_classifier(path, architecture="small_cnn", architecture_kwargs={"width": 4},
                                 normalization="0.3,0.4")
    assert _same(Classifier(small_module, mean=[0.3], std=[0.4]), normalised)


def test_pickled_module_is_refused(tmp_path, small_module) -> None:
    path = tmp_path / "whole.pt"
    torch.save(small_module, path)  # pickles the class itself: needs code execution to load
    with pytest.raises(UnsafeModelFileError, match="safetensors"):
        load_classifier(path, architecture="small_cnn")


def test_torchscript(tmp_path, small_module) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.script(small_module).save(str(path))
    assert _same(Classifier(small_module), load_classifier(path))


def test_entry_point() -> None:
    loaded = load_classifier("mlsafety.models.architectures.small_cnn:SmallCNN")
    assert loaded.n_parameters() > 0


def test_missing_and_mismatched(tmp_path, small_module) -> None:
    with pytest.raises(DataNotFoundError):
        load_classifier(tmp_path / "absent.safetensors")
    path = save_checkpoint(Classifier(small_module), tmp_path / "m.safetensors", "small_cnn", {"width": 4})
    with pytest.raises(InvalidInputError, match="does not match"):
        load_classifier(path, architecture_kwargs={"width": 8})

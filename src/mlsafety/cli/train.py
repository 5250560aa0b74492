"""``mlsafety train``: train a default architecture on Fashion-MNIST (or given data)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlsafety.cli._app import app
from mlsafety.cli._common import (
    check_device,
    check_out_file,
    check_positive_option,
    check_seed,
    cli_errors,
    console,
    fail,
)

#: ``--adversarial`` names and the loss classes of :mod:`mlsafety.robustness.training.adversarial`
_ADVERSARIAL = {"pgd": "PGDAdversarialLoss", "trades": "TRADESLoss", "fast-fgsm": "FastFGSMLoss"}


@app.command()
@cli_errors
def train(
    architecture: Annotated[str, typer.Option(help="small_cnn or preact_resnet.")] = "small_cnn",
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 6,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 128,
    learning_rate: Annotated[float, typer.Option(help="Peak learning rate (one-cycle AdamW).")] = 3e-3,
    data: Annotated[str | None, typer.Option(help="Training data (default: Fashion-MNIST train split).")] = None,
    test: Annotated[str | None, typer.Option(help="Test data (default: Fashion-MNIST test).")] = None,
    out: Annotated[Path | None, typer.Option(help="Checkpoint path (.safetensors).")] = None,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    adversarial: Annotated[str | None, typer.Option(metavar="pgd|trades|fast-fgsm", help="Adversarial training against an Linf ball of radius --epsilon: PGD (Madry et al. 2018), TRADES (Zhang et al. 2019) or fast FGSM (Wong et al. 2020).")] = None,
    epsilon: Annotated[float, typer.Option(help="Linf radius for --adversarial, on pixels in [0, 1] (0.1 is the audit's default for grayscale).")] = 0.1,
) -> None:
    """Train a classifier and save it as a safetensors checkpoint with its metadata.

    With --adversarial, every batch is replaced by adversarial examples found within
    --epsilon (several times slower per epoch); audit the result with
    'mlsafety audit --model <checkpoint>'.
    """
    import torch

    from mlsafety.data import default_splits, load_dataset
    from mlsafety.models import (
        FASHION_MNIST_MEAN,
        FASHION_MNIST_STD,
        Classifier,
        accuracy,
        build_architecture,
        cache_dir,
        save_checkpoint,
        train_classifier,
    )
    from mlsafety.registry import ARCHITECTURES

    ARCHITECTURES.get(architecture)  # unknown names fail here, with suggestions
    check_positive_option(epochs, "--epochs")
    check_positive_option(batch_size, "--batch-size")
    check_positive_option(learning_rate, "--learning-rate", integer=False)
    check_seed(seed)
    adversarial = adversarial.strip().lower() if adversarial is not None else None
    if adversarial is not None and adversarial not in _ADVERSARIAL:
        raise fail(f"--adversarial must be one of {', '.join(_ADVERSARIAL)}; got {adversarial!r}.")
    if not 0 < epsilon <= 1:
        raise fail(f"--epsilon must be in (0, 1] (pixels are in [0, 1]); got {epsilon}.")
    device = check_device(device) or "cpu"
    if test is not None and data is None:
        raise fail("--test needs --data too (the default trains and tests on Fashion-MNIST).")
    if out is not None:
        check_out_file(out, "--out", [".safetensors"])
    torch.manual_seed(seed)
    if data is None:
        splits = default_splits()
        train_data, test_data = splits["train"], splits["test"]
        mean, std = FASHION_MNIST_MEAN, FASHION_MNIST_STD
    else:
        train_data = load_dataset(data, split="train")
        if test:
            test_data = load_dataset(test, split="test")
            if test_data.n_classes != train_data.n_classes or test_data.image_shape != train_data.image_shape:
                raise fail(
                    f"--test has {test_data.n_classes} classes of {test_data.image_shape} images but --data has "
                    f"{train_data.n_classes} of {train_data.image_shape}; give a test set of the same task."
                )
        else:
            if len(train_data) < 10:
                raise fail(f"--data holds {len(train_data)} images; training needs at least 10.")
            train_data, test_data = train_data.split([0.9, 0.1], seed)
        mean = train_data.images.mean((0, 2, 3)).tolist()
        std = train_data.images.std((0, 2, 3)).clamp_min(1e-3).tolist()
    kwargs = {"in_channels": train_data.image_shape[0], "n_classes": train_data.n_classes}
    module = build_architecture(architecture, **kwargs).eval()
    classifier = Classifier(module, mean=mean, std=std, class_names=train_data.class_names,
                            input_shape=train_data.image_shape, name=architecture, device=device)
    loss_kwargs = {}
    card = {}
    if adversarial is not None:
        from mlsafety.robustness.training import adversarial as adversarial_training

        loss = getattr(adversarial_training, _ADVERSARIAL[adversarial])(epsilon=epsilon, seed=seed)
        loss_kwargs["loss_fn"] = loss
        card["adversarial_training"] = {"method": adversarial, "epsilon": epsilon, "norm": "Linf"}
    history = train_classifier(classifier, train_data, epochs=epochs, batch_size=batch_size,
                               learning_rate=learning_rate, seed=seed, **loss_kwargs)
    test_accuracy = accuracy(classifier, test_data)
    tag = f"_{adversarial}{epsilon:g}" if adversarial is not None else ""
    path = out or cache_dir() / f"{architecture}_{train_data.name}{tag}_seed{seed}.safetensors"
    save_checkpoint(classifier, path, architecture, kwargs, {
        "dataset": train_data.name, "test_accuracy": test_accuracy, "epochs": epochs,
        "seed": seed, "training_seconds": round(history.seconds, 1), **card,
    })
    console.print(f"test accuracy {test_accuracy:.4f}; trained in {history.seconds:.1f} s", markup=False)
    console.print(f"saved {path}", markup=False)

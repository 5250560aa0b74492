"""Fidelity of our corruptions against the reference package ``imagecorruptions`` (Michaelis et
al. 2019, the ImageNet-C code adapted to any image size).

On the same images, per corruption and severity, compares: the mean absolute change from
the clean image, the PSNR to the clean image, and (on Fashion-MNIST) the accuracy of the
shipped default model. ``imagecorruptions`` always uses the ImageNet table, so ours runs
with ``resolution="imagenet"`` here.

The reference crashes on current scikit-image / NumPy 2 in glass_blur and gaussian_blur
(``multichannel=``) and fog (``np.float_``); this harness patches those calls (only here).

    python benchmarks/fidelity_corruptions.py --n-photo 6 --n-small 48 --n-fashion 300
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).parent / "results"
TOLERANCE = {"mae_ratio": (0.8, 1.25), "psnr_db": 1.5, "accuracy_points": 5.0}


def patched_reference():
    """Import imagecorruptions with its crashing calls patched for current libraries."""
    warnings.filterwarnings("ignore")
    if not hasattr(np, "float_"):
        np.float_ = np.float64  # fog's plasma_fractal uses the NumPy 1 alias
    import imagecorruptions
    import imagecorruptions.corruptions as module
    from skimage.filters import gaussian

    def gaussian_compat(image, sigma=1, multichannel=None, **kwargs):
        if multichannel:
            kwargs["channel_axis"] = -1
        return gaussian(image, sigma=sigma, **kwargs)

    module.gaussian = gaussian_compat
    return imagecorruptions


def photo_patches(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Random square crops of scikit-image's bundled colour photographs, resized to ``size``."""
    from PIL import Image
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.hubble_deep_field()]
    rng = np.random.default_rng(seed)
    patches = []
    for i in range(n):
        photo = photos[i % len(photos)]
        side = int(min(photo.shape[:2]) * rng.uniform(0.5, 0.9))
        top = rng.integers(0, photo.shape[0] - side + 1)
        left = rng.integers(0, photo.shape[1] - side + 1)
        crop = Image.fromarray(photo[top:top + side, left:left + side]).resize((size, size), Image.BILINEAR)
        patches.append(np.asarray(crop))
    return np.stack(patches)


def reference_corrupt(module, images: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """Corrupt uint8 (N, H, W, 3) images one at a time with the reference."""
    from PIL import Image

    np.random.seed(seed)
    function = module.corruption_dict[name]
    out = [np.uint8(function(Image.fromarray(image), severity)) for image in images]
    return np.stack([o if o.ndim == 3 else np.stack([o] * 3, -1) for o in out])


def ours_corrupt(images: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    from mlsafety.registry import CORRUPTIONS

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    out = CORRUPTIONS.get(name)(severity=severity, seed=seed, resolution="imagenet")(x)
    return (out * 255).round().byte().permute(0, 2, 3, 1).numpy()


def change_stats(clean: np.ndarray, corrupted: np.ndarray) -> tuple[float, float]:
    diff = corrupted.astype(np.float64) / 255 - clean.astype(np.float64) / 255
    mse = float((diff**2).mean())
    return float(np.abs(diff).mean()), float(10 * np.log10(1 / max(mse, 1e-12)))


COLOUR = {"frost", "spatter", "saturate"}


def report(path: Path) -> str:
    """The fidelity table in Markdown, with the tolerance verdict of every row.

    The Fashion-MNIST accuracy of the reference is read from its luma for the corruptions that
    colour a gray image (frost, spatter, saturate) and from its first channel otherwise (the
    reference corrupts the three copies of a gray image with independent noise).
    """
    data = json.loads(path.read_text())
    low, high = TOLERANCE["mae_ratio"]
    lines = [
        f"Images: {data['n']['photo224']} photo patches at 224 px, {data['n']['photo32']} at 32 px, "
        f"{data['n']['fashion28']} Fashion-MNIST test images (clean accuracy of the default model "
        f"{data['clean_accuracy_fashion']:.1%}). MAE = mean absolute change from the clean image, PSNR to "
        f"the clean image in dB, acc = accuracy of the default model. Tolerances: MAE ratio in [{low}, {high}], "
        f"PSNR within {TOLERANCE['psnr_db']} dB, accuracy within {TOLERANCE['accuracy_points']:.0f} points.",
        "",
        "| corruption | sev | MAE 224 ours / ref | MAE 32 ours / ref | PSNR 32 ours / ref | MAE 28 ours / ref "
        "| acc ours / ref | within |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in data["rows"]:
        name = row["corruption"]
        reference_accuracy = row["fashion_acc_ref"] if name in COLOUR else row.get(
            "fashion_acc_ref_first_channel", row["fashion_acc_ref"])
        checks = []
        for key in ("photo224", "photo32", "fashion28"):
            ours, ref = row[f"{key}_mae_ours"], row[f"{key}_mae_ref"]
            checks.append((ref < 0.005 and ours < 0.005) or low <= ours / max(ref, 1e-9) <= high)
            checks.append(abs(row[f"{key}_psnr_ours"] - row[f"{key}_psnr_ref"]) <= TOLERANCE["psnr_db"])
        checks.append(abs(row["fashion_acc_ours"] - reference_accuracy) * 100 <= TOLERANCE["accuracy_points"])
        lines.append(
            f"| {name} | {row['severity']} | {row['photo224_mae_ours']:.3f} / {row['photo224_mae_ref']:.3f} "
            f"| {row['photo32_mae_ours']:.3f} / {row['photo32_mae_ref']:.3f} "
            f"| {row['photo32_psnr_ours']:.1f} / {row['photo32_psnr_ref']:.1f} "
            f"| {row['fashion28_mae_ours']:.3f} / {row['fashion28_mae_ref']:.3f} "
            f"| {row['fashion_acc_ours']:.1%} / {reference_accuracy:.1%} | {'yes' if all(checks) else 'no'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--report", action="store_true", help="print the Markdown table of the saved results")
    parser.add_argument("--n-photo", type=int, default=6)
    parser.add_argument("--n-small", type=int, default=48)
    parser.add_argument("--n-fashion", type=int, default=300)
    parser.add_argument("--severities", default="1,2,3,4,5")
    parser.add_argument("--names", default="all")
    args = parser.parse_args()
    if args.report:
        print(report(RESULTS / "fidelity_corruptions.json"))
        return
    torch.set_num_threads(1)
    reference = patched_reference()
    from mlsafety.data import default_splits
    from mlsafety.models import load_default_classifier
    from mlsafety.robustness.corruptions import corruption_names

    names = corruption_names("all") if args.names == "all" else args.names.split(",")
    severities = [int(s) for s in args.severities.split(",")]
    sets = {"photo224": photo_patches(args.n_photo, 224, 0), "photo32": photo_patches(args.n_small, 32, 1)}
    fashion = default_splits()["test"].head(args.n_fashion, seed=0)
    gray = (fashion.images[:, 0].numpy() * 255).round().astype(np.uint8)
    sets["fashion28"] = np.stack([gray] * 3, -1)
    classifier = load_default_classifier()
    labels = fashion.labels.numpy()

    def accuracy(rgb: np.ndarray, first_channel: bool = False) -> float:
        luma = rgb[..., 0].astype(np.float64) if first_channel else rgb.astype(np.float64) @ np.array(
            [0.299, 0.587, 0.114])
        x = torch.from_numpy(luma / 255).float()[:, None]
        return float((classifier.predict(x.clamp(0, 1)).numpy() == labels).mean())

    rows = []
    clean_accuracy = float((classifier.predict(fashion.images).numpy() == labels).mean())
    for name in names:
        for severity in severities:
            row = {"corruption": name, "severity": severity}
            for key, images in sets.items():
                start = time.perf_counter()
                try:
                    theirs = reference_corrupt(reference, images, name, severity, seed=severity)
                except Exception as error:
                    row[f"{key}_error"] = f"{type(error).__name__}: {error}"[:120]
                    continue
                ours_images = images
                if key == "fashion28":
                    ours_images = images[..., :1]  # ours runs on the gray image as users would
                mine = ours_corrupt(ours_images, name, severity, seed=severity)
                if mine.shape[-1] == 1:
                    mine = np.repeat(mine, 3, -1)
                clean = images
                mae_ref, psnr_ref = change_stats(clean, theirs)
                mae_ours, psnr_ours = change_stats(clean, mine)
                row.update({f"{key}_mae_ref": mae_ref, f"{key}_mae_ours": mae_ours,
                            f"{key}_psnr_ref": psnr_ref, f"{key}_psnr_ours": psnr_ours})
                if key == "fashion28":
                    row["fashion_acc_ref"] = accuracy(theirs)
                    # the reference corrupts a gray image as three channels with independent
                    # noise; its luma averages that noise away, its first channel does not
                    row["fashion_acc_ref_first_channel"] = accuracy(theirs, first_channel=True)
                    row["fashion_acc_ours"] = accuracy(mine)
                row[f"{key}_seconds"] = time.perf_counter() - start
            rows.append(row)
            print(json.dumps(row), flush=True)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "fidelity_corruptions.json"
    if args.names != "all" and out.exists():  # a partial rerun replaces only its own rows
        previous = json.loads(out.read_text())["rows"]
        rows = [r for r in previous if r["corruption"] not in names] + rows
    out.write_text(json.dumps({"clean_accuracy_fashion": clean_accuracy, "tolerance": TOLERANCE,
                               "n": {k: len(v) for k, v in sets.items()}, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""Digital corruptions: brightness, contrast, elastic transform, pixelate, JPEG compression
and (held out) saturate.

Hendrycks & Dietterich (2019), "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR.
"""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from mlsafety.registry import CORRUPTIONS
from mlsafety.robustness.corruptions import _ops
from mlsafety.robustness.corruptions._base import Corruption


@CORRUPTIONS.register("brightness", group="benchmark", family="digital")
class Brightness(Corruption):
    """Brighter exposure: ``c`` is added to the HSV value channel (ImageNet 0.1-0.5, CIFAR
    0.05-0.3); gray images get ``x + c``. Parameters as in :class:`Corruption`."""

    def _corrupt(self, x: torch.Tensor, params: float, generator: torch.Generator) -> torch.Tensor:
        if x.shape[1] != 3:
            return x + params
        # With hue and saturation fixed, RGB is proportional to V, so the HSV round trip of
        # skimage reduces to a rescaling (gray pixels with V = 0 become V').
        value = x.amax(1, keepdim=True)
        new_value = (value + params).clamp(0, 1)
        return torch.where(value > 0, x * new_value / value.clamp_min(1e-12), new_value.expand_as(x))


@CORRUPTIONS.register("contrast", group="benchmark", family="digital")
class Contrast(Corruption):
    """Lower contrast: :math:`x' = (x - \\bar x)\\,c + \\bar x` with :math:`\\bar x` the
    per-image, per-channel mean (ImageNet c = 0.4-0.05, CIFAR 0.75-0.15). Parameters as in
    :class:`Corruption`."""

    def _corrupt(self, x: torch.Tensor, params: float, generator: torch.Generator) -> torch.Tensor:
        means = x.mean(dim=(2, 3), keepdim=True)
        return (x - means) * params + means


@CORRUPTIONS.register("saturate", group="holdout", family="digital")
class Saturate(Corruption):
    """Colour saturation changed: HSV saturation becomes ``clip(s * a + b)``; a held-out
    corruption. A gray image has no saturation and is returned unchanged (as
    ``imagecorruptions`` does). Parameters as in :class:`Corruption`."""

    group = "holdout"

    def _corrupt(self, x: torch.Tensor, params: tuple, generator: torch.Generator) -> torch.Tensor:
        if x.shape[1] != 3:
            return x.clone()
        scale, offset = params
        # In HSV each channel is V (1 - S g(H)); with V and H fixed, V - x scales with S. Gray
        # pixels (S = 0) have hue 0 (red) in skimage, so they gain red saturation.
        value = x.amax(1, keepdim=True)
        minimum = x.amin(1, keepdim=True)
        saturation = torch.where(value > 0, (value - minimum) / value.clamp_min(1e-12), torch.zeros_like(value))
        new_saturation = (saturation * scale + offset).clamp(0, 1)
        ratio = new_saturation / saturation.clamp_min(1e-12)
        coloured = value - (value - x) * ratio
        red = torch.tensor([0.0, 1.0, 1.0], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        gray = value - value * new_saturation * red
        return torch.where(saturation > 0, coloured, gray)


def _solve_affine(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(n, 2, 3) affine maps sending three ``source`` points to ``target`` points (each (n, 3, 2))."""
    ones = torch.ones(*source.shape[:-1], 1, dtype=source.dtype, device=source.device)
    design = torch.cat([source, ones], -1)  # (n, 3, 3)
    return torch.linalg.solve(design, target).transpose(1, 2)


@CORRUPTIONS.register("elastic_transform", group="benchmark", family="digital")
class ElasticTransform(Corruption):
    """Elastic deformation (Simard et al. 2003) after a small random affine warp, as in ImageNet-C.

    Three points around the centre are moved by up to ``alpha_affine`` pixels and the image
    warped by the affine map fitting them (border mirrored); then every pixel is displaced
    by ``alpha * G_sigma * U(-1, 1)`` per axis (a Gaussian-smoothed uniform field) with
    bilinear sampling and a reflected border. Severity parameters ``(alpha, sigma,
    alpha_affine)`` are fractions of the image side (ImageNet-C multiplies by 244, CIFAR-10-C
    by 32; we multiply by the shorter side). Parameters as in :class:`Corruption`.
    """

    def _corrupt(self, x: torch.Tensor, params: tuple, generator: torch.Generator) -> torch.Tensor:
        n, _c, h, w = x.shape
        side = min(h, w)
        alpha, sigma, alpha_affine = (float(p) * side for p in params)
        device = x.device
        centre = torch.tensor([w // 2, h // 2], dtype=torch.float64, device=device)
        square = side // 3
        points = torch.stack([centre + square, centre + torch.tensor([square, -square], device=device),
                              centre - square])
        moved = points + (torch.rand(n, 3, 2, generator=generator, device=device, dtype=torch.float64) * 2 - 1) \
            * alpha_affine
        inverse = _solve_affine(moved, points.expand(n, 3, 2))  # output pixel -> input pixel
        ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float64),
                                torch.arange(w, device=device, dtype=torch.float64), indexing="ij")
        grid = torch.stack([xs, ys, torch.ones_like(xs)], -1).view(1, h * w, 3)
        source = (grid @ inverse.transpose(1, 2)).view(n, h, w, 2)
        # align_corners=True reflection mirrors about the border pixels, like BORDER_REFLECT_101
        scale = torch.tensor([2 / max(w - 1, 1), 2 / max(h - 1, 1)], device=device, dtype=torch.float64)
        x = F.grid_sample(x, (source * scale - 1).to(x.dtype), mode="bilinear", padding_mode="reflection",
                          align_corners=True)
        fields = torch.rand(n, 2, h, w, generator=generator, device=device) * 2 - 1
        fields = _ops.gaussian_blur_large(fields, sigma, mode="reflect", truncate=3.0) * alpha
        sample_x = xs.to(x.dtype) + fields[:, 0]
        sample_y = ys.to(x.dtype) + fields[:, 1]
        # scipy's "reflect" is half-sample symmetric: grid_sample reflection with align_corners=False
        grid = torch.stack([(2 * sample_x + 1) / w - 1, (2 * sample_y + 1) / h - 1], -1)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


@CORRUPTIONS.register("pixelate", group="benchmark", family="digital")
class Pixelate(Corruption):
    """Pixelation: downsampled to ``c`` times the size with PIL's box filter and enlarged back
    (ImageNet c = 0.6-0.25, CIFAR 0.95-0.65). Deterministic. Parameters as in :class:`Corruption`."""

    def _corrupt(self, x: torch.Tensor, params: float, generator: torch.Generator) -> torch.Tensor:
        h, w = x.shape[-2:]
        small = _ops.pil_resize(x, max(1, int(h * params)), max(1, int(w * params)), "box")
        return _ops.pil_resize(small, h, w, "box")


@CORRUPTIONS.register("jpeg_compression", group="benchmark", family="digital")
class JPEGCompression(Corruption):
    """JPEG compression artefacts at quality ``q`` (ImageNet 25-7, CIFAR 80-40), by Pillow's
    libjpeg with its default 4:2:0 chroma subsampling. The one per-image operation (no
    batched codec); runs on the CPU and returns to the input's device. Images with other
    than 1 or 3 channels are compressed channel by channel as gray images.
    Parameters as in :class:`Corruption`."""

    def _corrupt(self, x: torch.Tensor, params: int, generator: torch.Generator) -> torch.Tensor:
        n, c, h, w = x.shape
        planes = x if c in (1, 3) else x.reshape(n * c, 1, h, w)
        pixels = (planes * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        out = np.empty_like(pixels)
        mode = "RGB" if pixels.shape[-1] == 3 else "L"
        for i, image in enumerate(pixels):
            buffer = io.BytesIO()
            Image.fromarray(image if mode == "RGB" else image[..., 0], mode).save(buffer, "JPEG", quality=int(params))
            decoded = np.asarray(Image.open(buffer))
            out[i] = decoded if mode == "RGB" else decoded[..., None]
        result = torch.from_numpy(out).to(x.device).permute(0, 3, 1, 2).float() / 255
        return result.reshape(n, c, h, w)

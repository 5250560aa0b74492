"""Weather corruptions: snow, frost, fog and (held out) spatter.

Hendrycks & Dietterich (2019), "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR. Frost replaces the published photographs with a
bank of procedural textures of matched colour statistics (see :func:`_textures.frost_bank`).
"""

from __future__ import annotations

import torch

from mlsafety.registry import CORRUPTIONS
from mlsafety.robustness.corruptions import _ops, _textures
from mlsafety.robustness.corruptions._base import Corruption


def _colour(rgb: tuple[float, float, float], channels: int, device: torch.device) -> torch.Tensor:
    """An RGB colour as a (1, C, 1, 1) tensor: itself for 3 channels, its luma otherwise."""
    colour = torch.tensor(rgb, device=device).view(1, 3, 1, 1)
    if channels == 3:
        return colour
    return _ops.to_gray(colour).expand(1, channels, 1, 1)


@CORRUPTIONS.register("snow", group="benchmark", family="weather")
class Snow(Corruption):
    """Falling snow: a thresholded, zoomed Gaussian field streaked by motion blur at an angle
    in [-135, -45] degrees, added twice (once rotated by 180 degrees) over an image whitened
    towards ``1.5 gray + 0.5`` with weight ``1 - blend``.

    Severity parameters ``(loc, scale, zoom, threshold, blur_radius, blur_sigma, blend)``.
    The zoomed layer is blurred whole and its top-left corner kept, as in ``imagecorruptions``
    (ImageNet-C trims the centre first; on small images that makes snow about a third fainter).
    Parameters as in :class:`Corruption`.
    """

    def _corrupt(self, x: torch.Tensor, params: tuple, generator: torch.Generator) -> torch.Tensor:
        loc, scale, zoom, threshold, radius, sigma, blend = params
        n, c, h, w = x.shape
        layer = torch.randn(n, 1, h, w, generator=generator, device=x.device).mul_(scale).add_(loc)
        # as imagecorruptions: blur the whole zoomed layer, then keep its top-left corner (the
        # layer's first row and column fall on the noise samples, which matters once the
        # motion blur replicates the border)
        layer = _ops.clipped_zoom(layer, float(zoom), trim=False)
        layer = layer.masked_fill_(layer < threshold, 0.0).clamp_(0, 1)
        angle = torch.rand(n, generator=generator, device=x.device) * 90 - 135
        layer = _ops.motion_blur(layer, int(radius), float(sigma), angle)[..., :h, :w]
        layer = layer.mul_(255).round_().div_(255)
        if c == 3:
            # 1.5 gray + 0.5 accumulated on one plane (no three-channel temporary of products)
            red, green, blue = (1.5 * weight for weight in _ops.LUMA)
            whitened = torch.mul(x[:, 0:1], red).add_(x[:, 1:2], alpha=green).add_(x[:, 2:3], alpha=blue).add_(0.5)
        else:
            whitened = x * 1.5 + 0.5
        # blend x + (1 - blend) max(x, 1.5 gray + 0.5) + layer + layer turned by 180 degrees,
        # in place in one fresh tensor
        out = torch.maximum(x, whitened, out=torch.empty(x.shape, device=x.device))
        out.mul_(1 - blend).add_(x, alpha=blend)
        return out.add_(layer).add_(layer.flip((2, 3)))


@CORRUPTIONS.register("frost", group="benchmark", family="weather")
class Frost(Corruption):
    """Frost on the lens: :math:`x' = \\mathrm{clip}(a\\,x + b\\,F)` with ``F`` a frost texture.

    The published benchmark crops a random window of one of five frost photographs; we crop
    one of five procedural ice-crystal textures (ridged multi-octave noise with the
    per-channel mean and spread of one of those photographs), generated once per image size
    and device from a fixed seed, so no asset is needed (see :func:`_textures.frost_bank`).
    Each image gets a random texture, window and vertical flip. Gray images use the
    texture's luma. Severity parameters ``(a, b)``: ImageNet (1, 0.4)-(0.6, 0.75), CIFAR
    (1, 0.2)-(0.75, 0.45). Parameters as in :class:`Corruption`.
    """

    def _corrupt(self, x: torch.Tensor, params: tuple, generator: torch.Generator) -> torch.Tensor:
        image_weight, frost_weight = params
        n, c, h, w = x.shape
        rgb, luma = _textures.frost_bank(h, w, x.device)
        texture = _textures.crop_bank(rgb if c == 3 else luma, n, h, w, generator)
        if c == 3 or c == 1:
            # in place in the fresh crop: a x + b F
            return texture.mul_(frost_weight).add_(x, alpha=image_weight)
        return torch.mul(x, image_weight).add_(texture.expand(n, c, h, w), alpha=frost_weight)


@CORRUPTIONS.register("fog", group="benchmark", family="weather")
class Fog(Corruption):
    """Fog: a diamond-square plasma fractal (per image, side the next power of two) added
    with weight ``t``, then the image rescaled by ``max / (max + t)``.

    Severity parameters ``(t, wibble_decay)``; a smaller decay makes the fog patchier.
    Parameters as in :class:`Corruption`.
    """

    def _corrupt(self, x: torch.Tensor, params: tuple, generator: torch.Generator) -> torch.Tensor:
        thickness, decay = params
        n, _c, h, w = x.shape
        size = _ops.next_power_of_two(max(h, w))
        plasma = _textures.plasma_fractal(n, size, float(decay), generator, x.device, crop=(h, w))
        peak = x.amax(dim=(1, 2, 3), keepdim=True)
        # (x + t plasma) peak / (peak + t), in place in one fresh tensor
        out = torch.add(x, plasma.mul_(thickness)[:, None], out=torch.empty(x.shape, device=x.device))
        return out.mul_(peak).div_(peak + thickness)


def _dilate_rows(v: torch.Tensor) -> torch.Tensor:
    """OR of each pixel with its upper and lower neighbours (0/1 uint8; outside counts as 0)."""
    out = v.clone()
    out[..., 1:, :].bitwise_or_(v[..., :-1, :])
    out[..., :-1, :].bitwise_or_(v[..., 1:, :])
    return out


def _dilate_columns(v: torch.Tensor) -> torch.Tensor:
    out = v.clone()
    out[..., 1:].bitwise_or_(v[..., :-1])
    out[..., :-1].bitwise_or_(v[..., 1:])
    return out


def _truncated_distance(seeds: torch.Tensor, limit: int) -> torch.Tensor:
    """Distance (pixels) to the nearest ``True`` of ``seeds`` (N, 1, H, W), truncated at ``limit``.

    Grown by alternating 3x3 square and cross dilations (the octagonal distance, within
    about 8% of the Euclidean distance OpenCV's ``distanceTransform`` computes). The reached
    sets only grow, so the distance is ``limit`` minus the number of steps ``0 .. limit - 1``
    that have reached a pixel: one in-place sum per step, on bytes.
    """
    reached = seeds.to(torch.uint8)
    steps_reached = reached.clone()
    for radius in range(1, limit):
        if radius % 2:
            reached = _dilate_columns(_dilate_rows(reached))
        else:
            reached = _dilate_rows(reached).bitwise_or_(_dilate_columns(reached))
        steps_reached += reached
    return float(limit) - steps_reached.float()


def _inner_boundary(inside: torch.Tensor) -> torch.Tensor:
    """Pixels of ``inside`` (N, 1, H, W) bool with a 3x3 neighbour outside it; the image border
    is replicated (so it is no boundary). A separable 3x3 erosion by in-place ANDs."""
    eroded = inside.clone()
    eroded[..., 1:, :].logical_and_(inside[..., :-1, :])
    eroded[..., :-1, :].logical_and_(inside[..., 1:, :])
    rows = eroded.clone()
    eroded[..., 1:].logical_and_(rows[..., :-1])
    eroded[..., :-1].logical_and_(rows[..., 1:])
    return inside & ~eroded


def _equalize_opencv(values: torch.Tensor) -> torch.Tensor:
    """OpenCV ``equalizeHist`` on (N, 1, H, W) integer-valued floats in [0, 255]."""
    n = len(values)
    flat = values.reshape(n, -1).long().clamp_(0, 255)
    # one bincount over all images (image i's values offset by 256 i): exact counts
    offsets = torch.arange(n, device=values.device).view(n, 1) * 256
    histogram = torch.bincount((flat + offsets).view(-1), minlength=256 * n).view(n, 256).float()
    first = (histogram > 0).float().argmax(1, keepdim=True)
    cdf = histogram.cumsum(1)
    first_count = histogram.gather(1, first)
    total = flat.shape[1]
    scale = 255.0 / (total - first_count).clamp_min(1)
    lut = torch.round((cdf - cdf.gather(1, first)) * scale).clamp(0, 255)
    return lut.gather(1, flat).reshape(values.shape)


def _box3(x: torch.Tensor) -> torch.Tensor:
    kernel = torch.full((3,), 1 / 3, device=x.device)
    return _ops.filter_separable(x, kernel, kernel, "mirror")


@CORRUPTIONS.register("spatter", group="holdout", family="weather")
class Spatter(Corruption):
    """Water or mud splashed on the lens; a held-out corruption.

    A smoothed Gaussian field thresholded at ``threshold`` marks the liquid. Water (modes
    of severity 1-3): the liquid's edges (the boundary of the mask, standing in for
    OpenCV's Canny detector) give a distance map truncated at 20 px (an 8-neighbour chamfer
    transform), histogram-equalised, embossed and box-blurred as in the published code; the
    product with the liquid layer, normalised per image to ``intensity``, adds pale
    turquoise (175, 238, 238). Mud (severity 4-5): the mask is blurred by ``intensity`` and
    cut at 0.8, and covered in brown (63, 42, 20).

    Severity parameters ``(loc, scale, sigma, threshold, intensity, mud)``.
    Parameters as in :class:`Corruption`.
    """

    group = "holdout"

    def _corrupt(self, x: torch.Tensor, params: tuple, generator: torch.Generator) -> torch.Tensor:
        loc, scale, sigma, threshold, intensity, mud = params
        n, c, h, w = x.shape
        liquid = torch.randn(n, 1, h, w, generator=generator, device=x.device).mul_(scale).add_(loc)
        liquid = _ops.gaussian_blur(liquid, float(sigma))
        liquid = liquid.masked_fill_(liquid < threshold, 0.0)
        if mud:
            mask = (liquid > threshold).float()
            mask = _ops.gaussian_blur(mask, float(intensity))
            mask = mask.masked_fill_(mask < 0.8, 0.0)
            # x (1 - mask) + mask * colour, in place in one fresh tensor
            out = torch.mul(x, 1 - mask, out=torch.empty(x.shape, device=x.device))
            return out.add_(mask * _colour((63 / 255, 42 / 255, 20 / 255), c, x.device))
        liquid8 = liquid.mul_(255).floor_().clamp_(0, 255)
        # Canny finds the liquid's outline: pixels of the mask with a neighbour outside it
        # (replicated padding, so the image border is no edge)
        distance = _truncated_distance(_inner_boundary(liquid8 > 0), 20)
        distance = torch.floor(_box3(distance))
        distance = _equalize_opencv(distance)
        emboss = torch.tensor([[-2.0, -1, 0], [-1, 1, 1], [0, 1, 2]], device=x.device)
        distance = torch.round(_ops.filter2d(distance, emboss, "mirror")).clamp(0, 255)
        distance = _box3(distance)
        layer = liquid8.mul_(distance)
        layer = layer.div_(layer.amax(dim=(2, 3), keepdim=True).clamp_min(1e-12)).mul_(intensity)
        # x + layer * colour, in place in one fresh tensor
        out = torch.mul(layer, _colour((175 / 255, 238 / 255, 238 / 255), c, x.device),
                        out=torch.empty(x.shape, device=x.device))
        return out.add_(x)

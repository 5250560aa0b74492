"""Digital corruptions: brightness, contrast, elastic transform, pixelate, JPEG compression
and (held out) saturate.

Hendrycks & Dietterich (2019), "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from mlsafety.registry import CORRUPTIONS
from mlsafety.robustness.corruptions import _ops
from mlsafety.robustness.corruptions._base import Corruption


def _new_like(x: torch.Tensor) -> torch.Tensor:
    """An uninitialised contiguous (N, C, H, W) tensor for the result.

    Every corruption here writes its result once into such a tensor and then works in place:
    on the CPU each fresh full-size tensor costs page faults that exceed the arithmetic.
    """
    return torch.empty(x.shape, device=x.device, dtype=x.dtype)


def _channel_extremes(x: torch.Tensor, minimum: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-pixel max (and min) over the three channels, (N, 1, H, W) each.

    Elementwise over channel slices: ``amax(1)`` reduces along the shortest axis, slowly
    for channels-last input.
    """
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    value = torch.maximum(r, g)
    torch.maximum(value, b, out=value)
    if not minimum:
        return value, None
    low = torch.minimum(r, g)
    return value, torch.minimum(low, b, out=low)


@CORRUPTIONS.register("brightness", group="benchmark", family="digital")
class Brightness(Corruption):
    """Brighter exposure: ``c`` is added to the HSV value channel (ImageNet 0.1-0.5, CIFAR
    0.05-0.3); gray images get ``x + c``. Parameters as in :class:`Corruption`."""

    def _corrupt(self, x: torch.Tensor, params: float, generator: torch.Generator) -> torch.Tensor:
        if x.shape[1] != 3:
            return x + params
        # With hue and saturation fixed, RGB is proportional to V, so the HSV round trip of
        # skimage reduces to a rescaling (gray pixels with V = 0 become V'): one pass
        # x * ratio + offset over the image, the rest on (N, 1, H, W) planes.
        value, _ = _channel_extremes(x, minimum=False)
        positive = value > 0
        new_value = (value + params).clamp_(0, 1)
        ratio = torch.where(positive, new_value / value, 0.0)
        offset = torch.where(positive, 0.0, new_value)
        return torch.addcmul(offset, x, ratio, out=_new_like(x))


@CORRUPTIONS.register("contrast", group="benchmark", family="digital")
class Contrast(Corruption):
    """Lower contrast: :math:`x' = (x - \\bar x)\\,c + \\bar x` with :math:`\\bar x` the
    per-image, per-channel mean (ImageNet c = 0.4-0.05, CIFAR 0.75-0.15). Parameters as in
    :class:`Corruption`."""

    def _corrupt(self, x: torch.Tensor, params: float, generator: torch.Generator) -> torch.Tensor:
        means = x.mean(dim=(2, 3), keepdim=True)
        return torch.lerp(means, x, float(params), out=_new_like(x))


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
        # pixels (S = 0) have hue 0 (red) in skimage, so they gain red saturation. Computed as
        # V + (x - V) * ratio in place in the result, with per-channel offsets for gray pixels
        # (where x - V = 0): V for red, V - V S' for green and blue.
        value, minimum = _channel_extremes(x)
        # S = (V - min) / V in place, 0 where V <= 0 (0/0 and x/0 give NaN and inf, set to 0;
        # V < 0 gives S <= 0, clamped to 0)
        saturation = torch.sub(value, minimum, out=minimum).div_(value).nan_to_num_(0.0, 0.0, 0.0).clamp_min_(0)
        new_saturation = torch.mul(saturation, scale).add_(offset).clamp_(0, 1)
        coloured = saturation > 0
        ratio = torch.div(new_saturation, saturation).masked_fill_(~coloured, 0.0)
        gray_green_blue = torch.where(coloured, value, value - value * new_saturation)
        out = torch.sub(x, value, out=_new_like(x))
        torch.addcmul(value, out[:, 0:1], ratio, out=out[:, 0:1])
        torch.addcmul(gray_green_blue, out[:, 1:3], ratio, out=out[:, 1:3])
        return out


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

    chunk_elements = 1 << 20

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
        xs = torch.arange(w, device=device, dtype=torch.float64)
        ys = torch.arange(h, device=device, dtype=torch.float64)
        # align_corners=True reflection mirrors about the border pixels, like BORDER_REFLECT_101
        grid = torch.empty(n, h, w, 2, device=device, dtype=x.dtype)
        for axis, size in enumerate((w, h)):
            # an affine map of a pixel grid is a sum of a row and a column term: (N, H, W)
            # from (N, 1, W) + (N, H, 1), in float64 as before, without the (H W, 3) product
            a, b, c = (inverse[:, axis, k].view(n, 1, 1) for k in range(3))
            source = xs.view(1, 1, w) * a + (ys.view(1, h, 1) * b + c)
            grid[..., axis] = source.mul_(2 / max(size - 1, 1)).sub_(1)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=True)
        fields = torch.rand(n, 2, h, w, generator=generator, device=device).mul_(2).sub_(1)
        fields = _ops.gaussian_blur_large(fields, sigma, mode="reflect", truncate=3.0).mul_(alpha)
        # scipy's "reflect" is half-sample symmetric: grid_sample reflection with
        # align_corners=False; the grid is (2 (pixel + shift) + 1) / size - 1, in place
        fields[:, 0].add_(xs.to(x.dtype).view(1, w))
        fields[:, 1].add_(ys.to(x.dtype).view(h, 1))
        fields.mul_(2).add_(1)
        fields[:, 0].div_(w)
        fields[:, 1].div_(h)
        grid = torch.stack([fields[:, 0], fields[:, 1]], -1).sub_(1)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


@lru_cache(maxsize=64)
def _resample_taps(in_size: int, out_size: int, kind: str,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """PIL's resampling matrix (:func:`_ops.pil_resample_matrix`) as a few taps per output:
    (out, K) source indices and weights (K the widest row; padding taps have weight 0).
    The weights are None when every output copies one source pixel (enlarging by box)."""
    matrix = _ops.pil_resample_matrix(in_size, out_size, kind)
    taps = max(1, int((matrix != 0).sum(1).max()))
    # the nonzero weights of a row first, in source order (a stable sort keeps it)
    order = torch.sort((matrix == 0).to(torch.uint8), dim=1, stable=True).indices[:, :taps]
    weight = matrix.gather(1, order)
    if taps == 1 and bool((weight == 1).all()):
        return order.to(device), None
    return order.to(device), weight.to(device)


@lru_cache(maxsize=64)
def _box_segments(in_size: int, out_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
    """PIL's box downsampling as a segment mean: the output each source pixel falls in (in,)
    and every output's weight (out,), or None unless the windows partition the source with
    equal weights within each window (as box filters do when shrinking)."""
    matrix = _ops.pil_resample_matrix(in_size, out_size, "box")
    nonzero = matrix != 0
    if not bool((nonzero.sum(0) == 1).all()):
        return None
    weight = matrix.amax(1)
    if not torch.equal(matrix, nonzero * weight[:, None]):
        return None
    return nonzero.to(torch.uint8).argmax(0).to(device), weight.to(device)


def _resample_axis(x: torch.Tensor, size: int, dim: int, kind: str) -> torch.Tensor:
    """PIL-style resampling of ``x`` along ``dim`` (-1 or -2) to ``size``.

    The same weights as the dense matrix product, applied as a sum over the few nonzero
    taps of each output: box resampling has at most ``ceil(scale) + 1`` of them, so gathers
    beat a (size x side) matrix product by an order of magnitude on the CPU. Box shrinking on
    the CPU adds every source row or column into its window (``index_add_``, in source
    order) and scales once: half the time of the taps, which gather and multiply a zero-weight
    padding tap for every window shorter than the longest. (On other devices ``index_add_``
    adds with atomics in no fixed order, so the taps, which are reproducible, are kept.)
    """
    shape = list(x.shape)
    shape[dim] = size
    segments = _box_segments(x.shape[dim], size, x.device) if kind == "box" and x.device.type == "cpu" else None
    if segments is not None:
        segment, weight = segments
        out = x.new_zeros(shape).index_add_(dim, segment, x)
        return out.mul_(weight.to(x.dtype).view((-1, 1) if dim == -2 else (-1,)))
    index, weight = _resample_taps(x.shape[dim], size, kind, x.device)

    def tap(k: int) -> torch.Tensor:
        if dim == -1:
            if x.is_contiguous():
                # columns of a 2-D view: 1.5x a gather with an expanded index
                return x.view(-1, x.shape[-1]).index_select(1, index[:, k]).view(shape)
            # gather with an expanded index beats index_select along the last axis
            return x.gather(-1, index[:, k].expand(shape))
        if x.is_contiguous():
            # whole rows of a 3-D view: three times faster than index_select(-2) in 4-D
            return x.view(-1, *x.shape[-2:]).index_select(1, index[:, k]).view(shape)
        return x.index_select(-2, index[:, k])

    out = tap(0)
    if weight is None:
        return out
    view = (-1, 1) if dim == -2 else (-1,)
    weight = weight.to(x.dtype)
    out.mul_(weight[:, 0].view(view))
    for k in range(1, weight.shape[1]):
        out.addcmul_(tap(k), weight[:, k].view(view))
    return out


@CORRUPTIONS.register("pixelate", group="benchmark", family="digital")
class Pixelate(Corruption):
    """Pixelation: downsampled to ``c`` times the size with PIL's box filter and enlarged back
    (ImageNet c = 0.6-0.25, CIFAR 0.95-0.65). Deterministic. Parameters as in :class:`Corruption`."""

    bounded = True

    def _corrupt(self, x: torch.Tensor, params: float, generator: torch.Generator) -> torch.Tensor:
        h, w = x.shape[-2:]
        small_h, small_w = max(1, int(h * params)), max(1, int(w * params))
        # rows first: selecting whole rows is cheap, and the column passes then run on
        # fewer rows; the enlargement (one tap per output) is a gather per axis
        small = _resample_axis(_resample_axis(x, small_h, -2, "box"), small_w, -1, "box")
        # clamped here, on the small image, instead of the full-size result (a mean of values in
        # [0, 1] can leave it by a rounding error)
        small.clamp_(0, 1)
        index = _enlarge_index(small_h, small_w, h, w, x.device)
        if index is None:
            return _resample_axis(_resample_axis(small, w, -1, "box"), h, -2, "box")
        # enlarging by box copies one source pixel per output: one pass over the result
        return small.reshape(-1, small_h * small_w).index_select(1, index).view(*x.shape[:-2], h, w)


@lru_cache(maxsize=64)
def _enlarge_index(small_h: int, small_w: int, h: int, w: int, device: torch.device) -> torch.Tensor | None:
    """Flat source index (H W,) of every output pixel of a box enlargement, or None unless
    every output copies one source pixel."""
    rows, row_weight = _resample_taps(small_h, h, "box", device)
    cols, col_weight = _resample_taps(small_w, w, "box", device)
    if row_weight is not None or col_weight is not None:
        return None
    return (rows[:, :1] * small_w + cols[:, 0]).flatten()


@CORRUPTIONS.register("jpeg_compression", group="benchmark", family="digital")
class JPEGCompression(Corruption):
    """JPEG compression artefacts at quality ``q`` (ImageNet 25-7, CIFAR 80-40).

    Encoded and decoded by libjpeg-turbo through ``simplejpeg`` with the reference's settings
    (Pillow's ``save(..., "JPEG", quality=q)``): the IJG quantisation tables scaled by ``q``
    (byte-identical to Pillow's), 4:2:0 chroma subsampling, baseline Huffman coding; decoded
    with the accurate DCT and smooth chroma upsampling (bit-identical to Pillow's decoder).
    simplejpeg's encoder writes the same headers but not the same scan data as Pillow's: on
    photo patches 2-16 % of the values differ from a Pillow round trip (a few by tens of levels,
    where a coefficient is quantised the other way), while the distortion (mean change from the
    clean image) agrees within 1 %. The codec costs about half a Pillow round trip. Colour
    images go to the codec as RGBX words packed and unpacked with whole-plane integer operations
    (byte interleaving is a strided copy that costs as much as the codec). The one per-image
    operation (no batched codec): it runs on the CPU, on ``torch.get_num_threads()`` threads (the
    codec releases the GIL), and returns to the input's device. Images with other than 1 or 3
    channels are compressed channel by channel as gray images. Parameters as in
    :class:`Corruption`."""

    bounded = True
    work_elements = 1 << 20
    """Images are quantised, coded and unpacked in groups of about this many values, in a
    word buffer reused across groups (fresh full-size temporaries cost page faults on the CPU)."""

    def _corrupt(self, x: torch.Tensor, params: int, generator: torch.Generator) -> torch.Tensor:
        n, c, h, w = x.shape
        planes = (x if c in (1, 3) else x.reshape(n * c, 1, h, w)).cpu()
        count, channels = planes.shape[:2]
        quality = int(params)
        step = max(1, min(count, self.work_elements // planes[0].numel()))
        # the result doubles as scratch space: it holds the quantised levels, then the decoded
        # bytes as int32 (an in-place view), then the floats; a separate buffer for each stage
        # costs its page faults and cache misses, which exceed the arithmetic
        out = torch.empty(planes.shape, dtype=torch.float32)
        integers = out.view(torch.int32)
        workers = min(torch.get_num_threads(), count)
        pool = ThreadPoolExecutor(workers) if workers > 1 else None
        if channels == 3:
            # RGBX pixels as one int32 word each (R + 256 G + 65536 B, X = 255 after decoding):
            # packing and unpacking are contiguous whole-plane operations, where interleaving
            # three channels byte by byte is a strided copy at several times the cost
            words = torch.empty(step, h, w, dtype=torch.int32)
            pixels, colorspace = words.view(torch.uint8).view(step, h, w, 4).numpy(), "RGBX"
        else:
            gray = torch.empty(step, h, w, 1, dtype=torch.uint8)
            pixels, colorspace = gray.numpy(), "GRAY"
        try:
            for start in range(0, count, step):
                k = min(step, count - start)
                target, codes = out[start:start + k], integers[start:start + k]
                # no clamp: ``__call__`` has checked that x lies in [0, 1], so levels lie in 0..255
                levels = torch.mul(planes[start:start + k], 255, out=target).round_()
                if channels == 3:
                    # float sums of integers below 2^24 are exact
                    word = levels[:, 2].mul_(65536.0).add_(levels[:, 1], alpha=256.0).add_(levels[:, 0])
                    words[:k].copy_(word)
                else:
                    gray[:k, ..., 0].copy_(levels[:, 0])
                images = pixels[:k]
                if pool is not None:
                    list(pool.map(lambda image: jpeg_round_trip(image, quality, colorspace), images))
                else:
                    for image in images:
                        jpeg_round_trip(image, quality, colorspace)
                if channels == 3:
                    torch.bitwise_and(words[:k], 255, out=codes[:, 0])
                    for index in (1, 2):
                        torch.bitwise_right_shift(words[:k], 8 * index, out=codes[:, index]).bitwise_and_(255)
                else:
                    codes[:, 0].copy_(gray[:k, ..., 0])
                # integer-to-float in place, then a float division: one mixed-type division
                # measured twice as slow
                target.copy_(codes).div_(255)
        finally:
            if pool is not None:
                pool.shutdown()
        return out.view(n, c, h, w).to(device=x.device, dtype=x.dtype)


def jpeg_encode(image: np.ndarray, quality: int, colorspace: str | None = None) -> bytes:
    """One (H, W, C) uint8 image as a baseline JPEG with Pillow's default settings at ``quality``.

    ``colorspace`` is simplejpeg's name of the pixel layout: "GRAY", "RGB" or "RGBX" (the
    fourth byte ignored); None picks "GRAY" or "RGB" from C.
    """
    import simplejpeg  # a runtime dependency; imported here so that importing the package stays cheap

    colorspace = colorspace or ("GRAY" if image.shape[-1] == 1 else "RGB")
    return simplejpeg.encode_jpeg(image, quality=quality, colorspace=colorspace,
                                  colorsubsampling="Gray" if colorspace == "GRAY" else "420")


def jpeg_round_trip(image: np.ndarray, quality: int, colorspace: str | None = None) -> None:
    """Compress one (H, W, C) uint8 image at ``quality`` and write the decoded image back into
    it (``colorspace`` as in :func:`jpeg_encode`)."""
    import simplejpeg

    colorspace = colorspace or ("GRAY" if image.shape[-1] == 1 else "RGB")
    simplejpeg.decode_jpeg(jpeg_encode(image, quality, colorspace), colorspace=colorspace, fastdct=False,
                           fastupsample=False, buffer=image)

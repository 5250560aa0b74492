"""The fast weather and digital corruptions agree with their straightforward formulations.

Each test restates a corruption the plain way (dense matrix products, whole-tensor formulas,
one Pillow round trip per image) and checks the optimised code against it on contiguous and
channels-last input, with the awkward pixels (black, gray, nearly gray) included.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from mlsafety.registry import CORRUPTIONS
from mlsafety.robustness.corruptions import _ops


def _images(n: int = 3, size: tuple[int, int] = (23, 31), seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, *size, generator=generator)
    x[0, :, :3, :3] = 0.0  # black: V = 0
    x[0, :, 3:6, :3] = 0.4  # gray: S = 0
    x[0, :, 6:9, :3] = 1.0
    x[1, :, :2, :2] = torch.tensor([0.5, 0.5, 0.5 + 1e-6]).view(3, 1, 1)  # nearly gray
    if n > 2:  # V <= 0 within the tolerance of the input check
        x[2, :, :2, :2] = torch.tensor([-1e-6, -5e-7, 0.0]).view(3, 1, 1)
        x[2, :, 2:4, :2] = torch.tensor([-1e-6, -1e-6, -5e-7]).view(3, 1, 1)
    return x


def _layouts(x: torch.Tensor) -> list[torch.Tensor]:
    # channels-last is what torch.from_numpy(hwc).permute(0, 3, 1, 2) gives
    return [x, x.contiguous(memory_format=torch.channels_last)]


def _corrupt(name: str, x: torch.Tensor, severity: int, resolution: str = "imagenet") -> torch.Tensor:
    return CORRUPTIONS.get(name)(severity=severity, seed=0, resolution=resolution)(x)


def _params(name: str, severity: int, x: torch.Tensor, resolution: str = "imagenet"):
    return CORRUPTIONS.get(name)(severity=severity, resolution=resolution).parameters_for(*x.shape[-2:])


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_brightness_contrast_saturate_match_the_plain_formulas(severity: int) -> None:
    x = _images()
    brightness = _params("brightness", severity, x)
    value = x.amax(1, keepdim=True)
    new_value = (value + brightness).clamp(0, 1)
    expected_brightness = torch.where(value > 0, x * new_value / value.clamp_min(1e-12), new_value.expand_as(x))

    contrast = _params("contrast", severity, x)
    means = x.mean(dim=(2, 3), keepdim=True)
    expected_contrast = (x - means) * contrast + means

    scale, offset = _params("saturate", severity, x)
    minimum = x.amin(1, keepdim=True)
    saturation = torch.where(value > 0, (value - minimum) / value.clamp_min(1e-12), torch.zeros_like(value))
    new_saturation = (saturation * scale + offset).clamp(0, 1)
    coloured = value - (value - x) * new_saturation / saturation.clamp_min(1e-12)
    gray = value - value * new_saturation * torch.tensor([0.0, 1.0, 1.0]).view(1, 3, 1, 1)
    expected_saturate = torch.where(saturation > 0, coloured, gray)

    for inp in _layouts(x):
        torch.testing.assert_close(_corrupt("brightness", inp, severity), expected_brightness.clamp(0, 1),
                                   rtol=0, atol=1e-6)
        torch.testing.assert_close(_corrupt("contrast", inp, severity), expected_contrast.clamp(0, 1),
                                   rtol=0, atol=1e-6)
        torch.testing.assert_close(_corrupt("saturate", inp, severity), expected_saturate.clamp(0, 1),
                                   rtol=0, atol=1e-6)


@pytest.mark.parametrize("size", [(32, 32), (224, 224), (37, 11)])
@pytest.mark.parametrize("resolution", ["imagenet", "cifar"])
def test_pixelate_taps_match_the_dense_resampling_matrices(size: tuple[int, int], resolution: str) -> None:
    x = _images(2, size)
    for severity in (1, 3, 5):
        factor = _params("pixelate", severity, x, resolution)
        h, w = size
        small = _ops.pil_resize(x, max(1, int(h * factor)), max(1, int(w * factor)), "box")
        expected = _ops.pil_resize(small, h, w, "box")
        for inp in _layouts(x):
            torch.testing.assert_close(_corrupt("pixelate", inp, severity, resolution), expected,
                                       rtol=0, atol=1e-6)


def _pillow_round_trip(x: torch.Tensor, quality: int) -> tuple[torch.Tensor, list[bytes]]:
    """The reference: one Pillow save/open per image (per channel for C not in {1, 3})."""
    n, channels = x.shape[:2]
    pixels = (x * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    expected = np.empty_like(pixels)
    streams = []
    for i in range(n):
        if channels == 3:
            images = [(Image.fromarray(pixels[i].transpose(1, 2, 0)), slice(None))]
        else:
            images = [(Image.fromarray(pixels[i, k]), k) for k in range(channels)]
        for image, where in images:
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=quality)
            streams.append(buffer.getvalue())
            decoded = np.asarray(Image.open(buffer))
            expected[i, where] = decoded.transpose(2, 0, 1) if decoded.ndim == 3 else decoded
    return torch.from_numpy(expected).float() / 255, streams


def _segments(stream: bytes) -> dict[int, list[bytes]]:
    """JPEG marker segments before the scan data, by marker byte."""
    out: dict[int, list[bytes]] = {}
    i = 2
    while stream[i + 1] != 0xDA:
        length = int.from_bytes(stream[i + 2:i + 4], "big")
        out.setdefault(stream[i + 1], []).append(stream[i + 4:i + 2 + length])
        i += 2 + length
    return out


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("quality", [80, 25, 7])
def test_jpeg_encoder_writes_pillows_tables_and_layout(channels: int, quality: int) -> None:
    from mlsafety.robustness.corruptions.digital import jpeg_encode

    x = torch.rand(1, channels, 24, 40, generator=torch.Generator().manual_seed(quality))
    _, (reference,) = _pillow_round_trip(x, quality)
    image = (x * 255).round().to(torch.uint8)[0].permute(1, 2, 0).contiguous().numpy()
    ours, theirs = _segments(jpeg_encode(image, quality)), _segments(reference)
    assert ours[0xDB] == theirs[0xDB]  # quantisation tables
    assert ours[0xC0] == theirs[0xC0]  # frame: size, components, 4:2:0 sampling factors
    assert ours[0xC4] == theirs[0xC4]  # Huffman tables


def test_jpeg_decoder_is_pillows() -> None:
    import simplejpeg

    pixels = (torch.rand(40, 56, 3, generator=torch.Generator().manual_seed(3)) * 255).to(torch.uint8).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=18)
    expected = np.asarray(Image.open(buffer))
    assert np.array_equal(simplejpeg.decode_jpeg(buffer.getvalue(), fastdct=False, fastupsample=False), expected)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_jpeg_matches_a_pillow_round_trip_per_image(channels: int) -> None:
    # smooth images, as photographs are: on white noise every block is at the quantiser's edge
    generator = torch.Generator().manual_seed(1)
    x = torch.nn.functional.interpolate(torch.rand(3, channels, 6, 10, generator=generator), size=(24, 40),
                                        mode="bilinear", align_corners=False)
    quality = int(_params("jpeg_compression", 3, x))
    expected, _ = _pillow_round_trip(x, quality)
    clean = (x * 255).round() / 255
    for inp in (_layouts(x) if channels != 1 else [x]):
        ours = _corrupt("jpeg_compression", inp, 3)
        assert ours.shape == x.shape and ours.is_contiguous()
        assert torch.equal(ours, (ours * 255).round() / 255)  # 8-bit levels
        # the forward DCT differs from Pillow's: a level or two on single pixels, same distortion
        assert (ours - expected).abs().mean() < 1.5 / 255
        distortion, reference = (ours - clean).abs().mean(), (expected - clean).abs().mean()
        assert abs(distortion / reference - 1) < 0.05
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # images go to a thread pool
    try:
        threaded = _corrupt("jpeg_compression", x, 3)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(threaded, _corrupt("jpeg_compression", x, 3))


def _plain_elastic(x: torch.Tensor, params: tuple, generator: torch.Generator) -> torch.Tensor:
    """ElasticTransform as first written: the affine grid as an (H W, 3) product, whole-tensor steps."""
    import torch.nn.functional as F

    from mlsafety.robustness.corruptions.digital import _solve_affine

    n, _c, h, w = x.shape
    side = min(h, w)
    alpha, sigma, alpha_affine = (float(p) * side for p in params)
    centre = torch.tensor([w // 2, h // 2], dtype=torch.float64)
    square = side // 3
    points = torch.stack([centre + square, centre + torch.tensor([square, -square]), centre - square])
    moved = points + (torch.rand(n, 3, 2, generator=generator, dtype=torch.float64) * 2 - 1) * alpha_affine
    inverse = _solve_affine(moved, points.expand(n, 3, 2))
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    grid = torch.stack([xs, ys, torch.ones_like(xs)], -1).view(1, h * w, 3)
    source = (grid @ inverse.transpose(1, 2)).view(n, h, w, 2)
    scale = torch.tensor([2 / max(w - 1, 1), 2 / max(h - 1, 1)], dtype=torch.float64)
    x = F.grid_sample(x, (source * scale - 1).float(), padding_mode="reflection", align_corners=True)
    fields = torch.rand(n, 2, h, w, generator=generator) * 2 - 1
    fields = _ops.gaussian_blur_large(fields, sigma, mode="reflect", truncate=3.0) * alpha
    grid = torch.stack([(2 * (xs.float() + fields[:, 0]) + 1) / w - 1,
                        (2 * (ys.float() + fields[:, 1]) + 1) / h - 1], -1)
    return F.grid_sample(x, grid, padding_mode="reflection", align_corners=False)


@pytest.mark.parametrize("size", [(32, 32), (224, 224), (29, 41)])
def test_elastic_transform_matches_the_plain_formulation(size: tuple[int, int]) -> None:
    x = _images(2, size)
    for severity in (1, 3, 5):
        corruption = CORRUPTIONS.get("elastic_transform")(severity=severity, seed=3, resolution="imagenet")
        params = corruption.parameters_for(*size)
        expected = _plain_elastic(x, params, corruption._generator("cpu"))
        for inp in _layouts(x):
            torch.testing.assert_close(corruption._corrupt(inp, params, corruption._generator("cpu")), expected,
                                       rtol=0, atol=1e-5)


def test_frost_bank_is_fixed_and_crops_are_windows_of_it() -> None:
    from mlsafety.robustness.corruptions import _textures

    rgb, luma = _textures.frost_bank(20, 30, torch.device("cpu"))
    _textures.frost_bank.cache_clear()
    again, _ = _textures.frost_bank(20, 30, torch.device("cpu"))
    assert torch.equal(rgb, again)  # from a fixed seed, not from the call's
    assert rgb.shape == (len(_textures.FROST_STATISTICS), 3, 30, 45) and luma.shape == (rgb.shape[0], 1, 30, 45)
    torch.testing.assert_close(luma, _ops.to_gray(rgb))
    generator = torch.Generator().manual_seed(5)
    crops = _textures.crop_bank(rgb, 64, 20, 30, generator)
    # every crop is a window of one texture, upright or upside down
    for crop in crops:
        found = False
        for texture in rgb:
            for top in range(11):
                for left in range(16):
                    window = texture[:, top:top + 20, left:left + 30]
                    if torch.equal(crop, window) or torch.equal(crop, window.flip(1)):
                        found = True
                        break
                if found:
                    break
            if found:
                break
        assert found
    # the texture means follow the photographs' statistics
    means = rgb.mean(dim=(2, 3))
    expected = torch.tensor([s[0] for s in _textures.FROST_STATISTICS])
    torch.testing.assert_close(means, expected, rtol=0, atol=0.03)


def test_frost_is_seeded_and_works_for_any_channels_and_size() -> None:
    for shape in [(3, 3, 224, 224), (2, 1, 32, 32), (2, 5, 20, 24), (3, 3, 37, 29), (1, 3, 1, 7)]:
        x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
        first = CORRUPTIONS.get("frost")(severity=3, seed=4)(x)
        assert torch.equal(first, CORRUPTIONS.get("frost")(severity=3, seed=4)(x))
        assert first.shape == x.shape and float(first.min()) >= 0 and float(first.max()) <= 1
        if shape[0] > 1 and shape[-1] > 8:
            assert not torch.equal(first, CORRUPTIONS.get("frost")(severity=3, seed=5)(x))
    # gray images get the luma of the same window of the same texture
    from mlsafety.robustness.corruptions import _textures

    gray = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    frost = CORRUPTIONS.get("frost")(severity=2, seed=0)
    image_weight, frost_weight = frost.parameters_for(32, 32)
    rgb, luma = _textures.frost_bank(32, 32, torch.device("cpu"))
    expected = image_weight * gray + frost_weight * _textures.crop_bank(luma, 2, 32, 32, frost._generator("cpu"))
    torch.testing.assert_close(frost(gray), expected.clamp(0, 1), rtol=0, atol=1e-6)
    colour = frost._corrupt(gray.expand(2, 3, 32, 32), (image_weight, frost_weight), frost._generator("cpu"))
    rgb_crop = _textures.crop_bank(rgb, 2, 32, 32, frost._generator("cpu"))
    torch.testing.assert_close(colour, image_weight * gray + frost_weight * rgb_crop, rtol=0, atol=1e-6)


def _plain_plasma(n: int, size: int, wibble_decay: float, generator: torch.Generator) -> torch.Tensor:
    """The diamond-square of ImageNet-C's fog on one (n, size, size) array (the first implementation)."""
    heights = torch.zeros(n, size, size, dtype=torch.float64)
    step, wibble = size, 100.0

    def noisy_mean(total: torch.Tensor) -> torch.Tensor:
        noise = torch.rand(total.shape, generator=generator, dtype=torch.float64) * 2 - 1
        return total / 4 + wibble * wibble * noise

    while step >= 2:
        half = step // 2
        corners = heights[:, 0::step, 0::step]
        square = corners + torch.roll(corners, -1, 1)
        square = square + torch.roll(square, -1, 2)
        heights[:, half::step, half::step] = noisy_mean(square)
        centres = heights[:, half::step, half::step]
        corners = heights[:, 0::step, 0::step]
        heights[:, 0::step, half::step] = noisy_mean(
            centres + torch.roll(centres, 1, 1) + corners + torch.roll(corners, -1, 2))
        heights[:, half::step, 0::step] = noisy_mean(
            centres + torch.roll(centres, 1, 2) + corners + torch.roll(corners, -1, 1))
        step //= 2
        wibble /= wibble_decay
    low = heights.amin(dim=(1, 2), keepdim=True)
    high = heights.amax(dim=(1, 2), keepdim=True)
    return ((heights - low) / (high - low).clamp_min(1e-12)).float()


@pytest.mark.parametrize(("n", "size", "decay", "crop"),
                         [(3, 256, 1.7, (224, 224)), (2, 32, 2.0, None), (2, 64, 3.0, (37, 29)),
                          (1, 2, 1.5, (1, 2)), (2, 1, 2.0, None), (2, 8, 1.4, (7, 8))])
def test_plasma_fractal_is_the_plain_diamond_square_bit_for_bit(n: int, size: int, decay: float,
                                                                  crop: tuple[int, int] | None) -> None:
    from mlsafety.robustness.corruptions import _textures

    expected = _plain_plasma(n, size, decay, torch.Generator().manual_seed(3))
    if crop is not None:
        expected = expected[:, :crop[0], :crop[1]]
    plasma = _textures.plasma_fractal(n, size, decay, torch.Generator().manual_seed(3), "cpu", crop=crop)
    assert torch.equal(plasma, expected)


def _plain_distance(seeds: torch.Tensor, limit: int) -> torch.Tensor:
    """Alternating square and cross dilations by max pooling, the distance set per step."""
    import torch.nn.functional as F

    reached = seeds.float()
    distance = torch.where(seeds, 0.0, float(limit))
    cross = torch.tensor([[0.0, 1, 0], [1, 1, 1], [0, 1, 0]]).view(1, 1, 3, 3)
    for radius in range(1, limit):
        if radius % 2:
            grown = F.max_pool2d(F.pad(reached, (1, 1, 1, 1)), 3, stride=1)
        else:
            grown = (F.conv2d(F.pad(reached, (1, 1, 1, 1)), cross) > 0).float()
        distance = torch.where(grown > reached, float(radius), distance)
        reached = grown
    return distance


def test_spatter_helpers_match_pooling_and_scatter_formulations() -> None:
    import torch.nn.functional as F

    from mlsafety.robustness.corruptions import weather

    generator = torch.Generator().manual_seed(2)
    for shape in [(3, 1, 40, 57), (2, 1, 1, 9), (1, 1, 5, 1)]:
        inside = torch.rand(shape, generator=generator) > 0.6
        padded = F.pad(inside.float(), (1, 1, 1, 1), mode="replicate")
        expected_edges = inside & (-F.max_pool2d(-padded, 3, stride=1) < 0.5)
        edges = weather._inner_boundary(inside)
        assert torch.equal(edges, expected_edges)
        for limit in (1, 2, 7, 20):
            assert torch.equal(weather._truncated_distance(edges, limit), _plain_distance(edges, limit))
    values = torch.randint(0, 40, (3, 1, 17, 13), generator=generator).float()
    values[1] = 7.0  # a constant image
    n = len(values)
    flat = values.reshape(n, -1).long()
    histogram = torch.zeros(n, 256).scatter_add_(1, flat, torch.ones_like(flat, dtype=torch.float))
    first = (histogram > 0).float().argmax(1, keepdim=True)
    cdf = histogram.cumsum(1)
    scale = 255.0 / (flat.shape[1] - histogram.gather(1, first)).clamp_min(1)
    lut = torch.round((cdf - cdf.gather(1, first)) * scale).clamp(0, 255)
    assert torch.equal(weather._equalize_opencv(values), lut.gather(1, flat).reshape(values.shape))


def _plain_snow(x: torch.Tensor, params: tuple, generator: torch.Generator) -> torch.Tensor:
    loc, scale, zoom, threshold, radius, sigma, blend = params
    n, c, h, w = x.shape
    layer = torch.randn(n, 1, h, w, generator=generator) * scale + loc
    layer = _ops.clipped_zoom(layer, float(zoom), trim=False)
    layer = torch.where(layer < threshold, torch.zeros_like(layer), layer).clamp(0, 1)
    angle = torch.rand(n, generator=generator) * 90 - 135
    layer = _ops.motion_blur(layer, int(radius), float(sigma), angle)[..., :h, :w]
    layer = torch.round(layer * 255) / 255
    gray = _ops.to_gray(x) if c == 3 else x
    x = blend * x + (1 - blend) * torch.maximum(x, gray * 1.5 + 0.5)
    return x + layer + torch.flip(layer, dims=(2, 3))


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (2, 1, 37, 29), (1, 3, 64, 48)])
def test_snow_matches_the_plain_formulation(shape: tuple[int, ...]) -> None:
    x = torch.rand(shape, generator=torch.Generator().manual_seed(4))
    for severity in (1, 3, 5):
        snow = CORRUPTIONS.get("snow")(severity=severity, seed=1, resolution="imagenet")
        params = snow.parameters_for(*shape[-2:])
        torch.testing.assert_close(snow._corrupt(x, params, snow._generator("cpu")),
                                   _plain_snow(x, params, snow._generator("cpu")), rtol=0, atol=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_packed_words_equal_a_plain_round_trip_per_image(channels: int) -> None:
    # the batched path (RGBX words, groups of images in reused buffers) changes nothing: every
    # image equals its own quantise -> encode -> decode in the codec's plain RGB or gray layout
    from mlsafety.robustness.corruptions.digital import JPEGCompression, jpeg_round_trip

    generator = torch.Generator().manual_seed(4)
    x = torch.nn.functional.interpolate(torch.rand(5, channels, 9, 7, generator=generator), size=(36, 28),
                                        mode="bilinear", align_corners=False)
    corruption = JPEGCompression(severity=4, resolution="imagenet")
    corruption.work_elements = 2 * x[0].numel()  # three groups, the last one short
    quality = int(corruption.parameters_for(36, 28))
    expected = []
    for image in x:
        pixels = (image * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
        jpeg_round_trip(pixels, quality)
        expected.append(torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)
    assert torch.equal(corruption(x), torch.stack(expected))

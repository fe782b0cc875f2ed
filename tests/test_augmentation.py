"""Random shifts of training images."""

from __future__ import annotations

import numpy as np
import pytest

from fbsnn_brian import ValidationError
from fbsnn_brian.augmentation import RandomShift


class FixedOffsets:
    """Stands in for a Generator: returns the given offsets from ``integers``."""

    def __init__(self, offsets: list[tuple[int, int]]) -> None:
        self.offsets = np.array(offsets)

    def integers(self, low: int, high: int, size: tuple[int, int]) -> np.ndarray:
        assert size == self.offsets.shape and self.offsets.min() >= low
        assert self.offsets.max() < high
        return self.offsets


def test_a_pixel_moves_by_the_drawn_offset_and_the_border_is_cleared() -> None:
    image = np.zeros((4, 4))
    image[1, 2] = 0.7
    image[3, 0] = 0.2  # leaves the frame when moved down or left
    offsets = [(1, -1), (-1, 1), (0, 0)]
    shifted = RandomShift(max_shift=1)(
        np.tile(image.ravel(), (3, 1)),
        FixedOffsets(offsets),  # type: ignore[arg-type]
    ).reshape(3, 4, 4)
    down_left = np.zeros((4, 4))
    down_left[2, 1] = 0.7
    up_right = np.zeros((4, 4))
    up_right[0, 3] = 0.7
    up_right[2, 1] = 0.2
    np.testing.assert_array_equal(shifted[0], down_left)
    np.testing.assert_array_equal(shifted[1], up_right)
    np.testing.assert_array_equal(shifted[2], image)


def test_offsets_are_drawn_in_range_and_the_input_is_not_changed() -> None:
    rng = np.random.default_rng(0)
    images = rng.random((200, 64))
    original = images.copy()
    shifted = RandomShift(max_shift=2)(images, np.random.default_rng(1))
    np.testing.assert_array_equal(images, original)
    assert shifted.shape == images.shape
    # every output is the input translated by some (dy, dx) in [-2, 2]^2, zero-filled
    for source, result in zip(images.reshape(-1, 8, 8), shifted.reshape(-1, 8, 8), strict=True):
        matches = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if np.array_equal(
                result,
                RandomShift(max_shift=2)(
                    source.reshape(1, 64),
                    FixedOffsets([(dy, dx)]),  # type: ignore[arg-type]
                ).reshape(8, 8),
            )
        ]
        assert len(matches) == 1


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValidationError, match="max_shift"):
        RandomShift(max_shift=0)
    with pytest.raises(ValidationError, match="not a square number"):
        RandomShift()(np.zeros((2, 10)), np.random.default_rng(0))
    with pytest.raises(ValidationError, match="image_shape"):
        RandomShift(image_shape=(3, 3))(np.zeros((2, 10)), np.random.default_rng(0))

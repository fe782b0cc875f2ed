"""Random shifts of training images."""

from __future__ import annotations

import numpy as np
import pytest

from fbsnn_brian import ValidationError
from fbsnn_brian.learning.augmentation import RandomShift


class FixedShift(RandomShift):
    """A RandomShift whose offsets are given, to check the translation itself."""

    def __init__(self, offsets: list[tuple[int, int]]) -> None:
        super().__init__(max_shift=1)
        object.__setattr__(self, "offsets", np.array(offsets))

    def draw_offsets(self, n_samples: int, rng: np.random.Generator) -> np.ndarray:
        return self.offsets  # type: ignore[attr-defined, no-any-return]


def test_a_pixel_moves_by_the_drawn_offset_and_the_border_is_cleared() -> None:
    image = np.zeros((4, 4))
    image[1, 2] = 0.7
    image[3, 0] = 0.2  # leaves the frame when moved down or left
    offsets = [(1, -1), (-1, 1), (0, 0)]
    shifted = FixedShift(offsets)(np.tile(image.ravel(), (3, 1)), np.random.default_rng(0))
    shifted = shifted.reshape(3, 4, 4)
    down_left = np.zeros((4, 4))
    down_left[2, 1] = 0.7
    up_right = np.zeros((4, 4))
    up_right[0, 3] = 0.7
    up_right[2, 1] = 0.2
    np.testing.assert_array_equal(shifted[0], down_left)
    np.testing.assert_array_equal(shifted[1], up_right)
    np.testing.assert_array_equal(shifted[2], image)


def test_offsets_follow_the_distribution_and_the_input_is_not_changed() -> None:
    offsets = RandomShift(max_shift=2, probability=0.4).draw_offsets(
        20000, np.random.default_rng(1)
    )
    moved = np.any(offsets != 0, axis=1)
    assert abs(float(moved.mean()) - 0.4) < 0.015  # standard error 0.0035
    assert not np.any(np.all(offsets != 0, axis=1))  # one axis at a time
    sizes = np.abs(offsets[moved]).max(axis=1)
    assert set(np.unique(sizes)) == {1, 2}
    assert abs(float(np.mean(offsets[moved].sum(axis=1) > 0)) - 0.5) < 0.02
    assert abs(float(np.mean(offsets[moved][:, 0] != 0)) - 0.5) < 0.02

    images = np.random.default_rng(0).random((50, 64))
    original = images.copy()
    shifted = RandomShift(max_shift=1)(images, np.random.default_rng(2))
    np.testing.assert_array_equal(images, original)
    unchanged = np.all(shifted == images, axis=1)
    assert 0 < unchanged.sum() < 50


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValidationError, match="max_shift"):
        RandomShift(max_shift=0)
    with pytest.raises(ValidationError, match=r"probability must be in \(0, 1\], got 1.5"):
        RandomShift(probability=1.5)
    with pytest.raises(ValidationError, match="not a square number"):
        RandomShift()(np.zeros((2, 10)), np.random.default_rng(0))
    with pytest.raises(ValidationError, match="image_shape"):
        RandomShift(image_shape=(3, 3))(np.zeros((2, 10)), np.random.default_rng(0))

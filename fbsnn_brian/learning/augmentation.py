"""Training-set augmentation: random translations of image inputs.

Small digit datasets are learned to 99-100 % training accuracy within a few epochs, after which
test accuracy is limited by overfitting. Presenting training samples at small random offsets
(a fresh draw each time a sample is shown, the vacated border filled with 0) is the classic
remedy; it changes only what the network is shown during training, never the test data.

The translation is kept mild: a sample is moved with probability ``probability``, along one
axis chosen at random, by 1 to ``max_shift`` pixels in a random direction. On the 8 x 8 digits
moving every sample, diagonals included, was too strong (the training accuracy of a 64-128-10
network fell to 95 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.validation import check_positive_float, check_positive_int

__all__ = ["RandomShift", "square_image_shape"]

FloatArray = NDArray[np.float64]


def square_image_shape(n_features: int) -> tuple[int, int]:
    """(side, side) of inputs that are flattened square images; refuse any other length."""
    side = math.isqrt(n_features)
    if side * side != n_features:
        raise ValidationError(
            f"RandomShift: inputs must be flattened square images to be shifted, got "
            f"{n_features} features (not a square number); pass image_shape explicitly."
        )
    return side, side


@dataclass(frozen=True)
class RandomShift:
    """Shift input images by a random whole number of pixels along one axis.

    Parameters
    ----------
    max_shift : int
        Largest offset in pixels (>= 1); the size of a shift is drawn uniformly from
        ``1..max_shift`` and its sign and axis with equal probability.
    probability : float
        Probability in (0, 1] that a sample is shifted at all (default 0.5).
    image_shape : (int, int), optional
        (height, width) of the images in row-major order; by default the inputs are taken to
        be square images.

    Examples
    --------
    >>> shift = RandomShift(max_shift=1)
    >>> images = np.arange(2 * 9, dtype=float).reshape(2, 9) / 17
    >>> shift(images, np.random.default_rng(0)).shape
    (2, 9)
    """

    max_shift: int = 1
    probability: float = 0.5
    image_shape: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        check_positive_int("RandomShift", "max_shift", self.max_shift)
        probability = check_positive_float("RandomShift", "probability", self.probability)
        if probability > 1:
            raise ValidationError(
                f"RandomShift: probability must be in (0, 1], got {self.probability!r}."
            )
        if self.image_shape is not None:
            shape = tuple(self.image_shape)
            if len(shape) != 2:
                raise ValidationError(
                    f"RandomShift: image_shape must be (height, width), got {self.image_shape!r}."
                )
            for axis in shape:
                check_positive_int("RandomShift", "image_shape", axis)

    def draw_offsets(self, n_samples: int, rng: np.random.Generator) -> NDArray[np.int64]:
        """(row, column) offsets of ``n_samples`` samples, shape (n_samples, 2)."""
        moved = rng.random(n_samples) < self.probability
        size = rng.integers(1, self.max_shift + 1, size=n_samples)
        sign = np.where(rng.random(n_samples) < 0.5, -1, 1)
        axis = rng.integers(0, 2, size=n_samples)
        offsets = np.zeros((n_samples, 2), dtype=np.int64)
        offsets[np.arange(n_samples), axis] = moved * sign * size
        return offsets

    def __call__(self, inputs: FloatArray, rng: np.random.Generator) -> FloatArray:
        """Return shifted copies of ``inputs`` (shape (n_samples, height * width))."""
        height, width = self.image_shape or square_image_shape(inputs.shape[1])
        if height * width != inputs.shape[1]:
            raise ValidationError(
                f"RandomShift: image_shape {self.image_shape!r} does not match "
                f"{inputs.shape[1]} features."
            )
        images = inputs.reshape(-1, height, width)
        shifted = np.zeros_like(images)
        offsets = self.draw_offsets(len(images), rng)
        for index, (dy, dx) in enumerate(offsets):
            target_rows = slice(max(dy, 0), height + min(dy, 0))
            source_rows = slice(max(-dy, 0), height + min(-dy, 0))
            target_cols = slice(max(dx, 0), width + min(dx, 0))
            source_cols = slice(max(-dx, 0), width + min(-dx, 0))
            shifted[index, target_rows, target_cols] = images[index, source_rows, source_cols]
        return shifted.reshape(inputs.shape)

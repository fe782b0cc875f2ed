"""Tests of fbsnn_brian.io.datasets: loaders, validation messages and split rules."""

from __future__ import annotations

import dataclasses
import doctest
import gzip
import warnings
from pathlib import Path

import numpy as np
import pytest

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.io import datasets
from fbsnn_brian.io.datasets import (
    Dataset,
    EmptyClassWarning,
    check_compatible,
    load_dataset,
    load_digits,
    load_idx,
    load_npz,
    load_train_and_test,
    save_npz,
    train_test_split,
)

MNIST_T10K = Path("/work/shared/data/mnist-t10k")


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode an unsigned-byte array in the IDX format (magic 0x0000080N, big-endian sizes)."""
    header = bytes([0, 0, 0x08, array.ndim])
    header += b"".join(int(size).to_bytes(4, "big") for size in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_pair(
    directory: Path, images: np.ndarray, labels: np.ndarray, *, split: str, compress: bool
) -> None:
    suffix = ".gz" if compress else ""
    for kind, array, rank in (("images", images, 3), ("labels", labels, 1)):
        payload = idx_bytes(array)
        path = directory / f"{split}-{kind}-idx{rank}-ubyte{suffix}"
        path.write_bytes(gzip.compress(payload) if compress else payload)


@pytest.fixture
def tiny_images() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(5, 3, 4), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255  # make both ends of the range appear
    labels = np.array([0, 2, 1, 2, 0], dtype=np.uint8)
    return images, labels


def toy_dataset(labels: list[int], n_classes: int = 3) -> Dataset:
    inputs = np.linspace(0.0, 1.0, 2 * len(labels)).reshape(len(labels), 2)
    return Dataset(inputs=inputs, labels=labels, n_classes=n_classes, name="toy")


def test_docstring_examples_run() -> None:
    result = doctest.testmod(datasets, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


# --- Dataset validation -----------------------------------------------------------------------


def test_dataset_normalises_dtypes_and_reports_sizes() -> None:
    data = Dataset(
        inputs=[[0, 1], [1, 0]], labels=np.array([1, 0], np.uint8), n_classes=2, name="t"
    )
    assert data.inputs.dtype == np.float64
    assert data.labels.dtype == np.int64
    assert (data.n_samples, data.n_features) == (2, 2)
    assert repr(data) == "Dataset(name='t', n_samples=2, n_features=2, n_classes=2)"
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.name = "changed"  # type: ignore[misc]
    assert dataclasses.replace(data, name="renamed").name == "renamed"


def test_dataset_refuses_length_mismatch() -> None:
    with pytest.raises(ValidationError, match=r"labels must have shape \(3,\) to match the 3 rows"):
        Dataset(inputs=np.zeros((3, 2)), labels=[0, 1], n_classes=2, name="toy")


@pytest.mark.parametrize(
    ("inputs", "labels", "n_classes", "message"),
    [
        (np.full((2, 2), 1.5), [0, 1], 2, r"inputs must lie in \[0, 1\], got values from 1.5"),
        (np.array([[np.nan, 0.0]]), [0], 2, "must contain only finite values"),
        (np.zeros((0, 2)), np.zeros(0, int), 2, "must not be empty"),
        (np.zeros(4), [0, 1, 0, 1], 2, "inputs must be a 2-D array"),
        (np.zeros((2, 2)), [0, 2], 2, r"labels must lie in \[0, 2\) for n_classes=2"),
        (np.zeros((2, 2)), [0.0, 1.0], 2, "labels must have an integer dtype, got dtype float64"),
        (np.zeros((2, 2)), [0, 1], 0, "n_classes must be a positive integer, got 0"),
    ],
)
def test_dataset_refuses_bad_values(
    inputs: np.ndarray, labels: list[int], n_classes: int, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Dataset(inputs=inputs, labels=labels, n_classes=n_classes, name="toy")


def test_subset_selects_rows_and_checks_indices() -> None:
    data = toy_dataset([0, 1, 2, 1])
    picked = data.subset([3, 0])
    np.testing.assert_array_equal(picked.inputs, data.inputs[[3, 0]])
    assert picked.labels.tolist() == [1, 0]
    assert picked.n_classes == 3 and picked.name == "toy"
    assert data.subset(data.labels == 1).labels.tolist() == [1, 1]
    with pytest.raises(
        ValidationError, match=r"indices must lie in \[0, 4\), got values from 0 to 4"
    ):
        data.subset([0, 4])
    with pytest.raises(ValidationError, match=r"boolean mask must have shape \(4,\)"):
        data.subset([True, False])


# --- Loaders ----------------------------------------------------------------------------------


def test_load_digits_is_scaled_to_unit_range() -> None:
    digits = load_digits()
    assert (digits.n_samples, digits.n_features, digits.n_classes) == (1797, 64, 10)
    assert digits.inputs.min() == 0.0 and digits.inputs.max() == 1.0
    # Grey levels are the integers 0..16, so inputs * 16 must be whole numbers.
    np.testing.assert_array_equal(digits.inputs * 16, np.round(digits.inputs * 16))
    assert set(digits.labels.tolist()) == set(range(10))


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_load_idx_reads_tiny_files(
    tmp_path: Path, tiny_images: tuple[np.ndarray, np.ndarray], compress: bool
) -> None:
    images, labels = tiny_images
    write_idx_pair(tmp_path, images, labels, split="t10k", compress=compress)
    data = load_idx(tmp_path)
    assert (data.n_samples, data.n_features, data.n_classes) == (5, 12, 3)
    np.testing.assert_array_equal(data.inputs, images.reshape(5, 12) / 255.0)
    assert data.labels.tolist() == [0, 2, 1, 2, 0]
    assert data.name == f"idx:{tmp_path}"


def test_load_idx_needs_split_when_both_are_present(
    tmp_path: Path, tiny_images: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = tiny_images
    write_idx_pair(tmp_path, images, labels, split="t10k", compress=True)
    write_idx_pair(tmp_path, images[:3], labels[:3], split="train", compress=False)
    with pytest.raises(ValidationError, match="holds both the 'train' and 't10k' splits") as info:
        load_idx(tmp_path)
    assert "train-images-idx3-ubyte" in str(info.value)  # the files found are listed
    assert load_idx(tmp_path, split="train").n_samples == 3
    assert load_dataset(f"idx:{tmp_path}", split="t10k").n_samples == 5
    with pytest.raises(ValidationError, match="Did you mean 'train'"):
        load_idx(tmp_path, split="trian")


def test_load_idx_lists_files_when_pair_is_missing(tmp_path: Path) -> None:
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValidationError, match="no complete pair of IDX files") as info:
        load_idx(tmp_path)
    assert "Files found: notes.txt, t10k-images-idx3-ubyte.gz" in str(info.value)
    with pytest.raises(ValidationError, match="must be an existing directory"):
        load_idx(tmp_path / "absent")


def test_load_idx_rejects_corrupted_magic(
    tmp_path: Path, tiny_images: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = tiny_images
    write_idx_pair(tmp_path, images, labels, split="t10k", compress=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    payload = path.read_bytes()
    path.write_bytes(b"\x12\x34" + payload[2:])
    with pytest.raises(
        ValidationError,
        match=r"t10k-images-idx3-ubyte is not an IDX file: magic number 0x12340803 must start "
        r"with two zero bytes \(expected 0x00000803\)",
    ):
        load_idx(tmp_path)
    path.write_bytes(bytes([0, 0, 0x0D, 3]) + payload[4:])
    with pytest.raises(ValidationError, match="data type code 0x0D .* only 0x08"):
        load_idx(tmp_path)


def test_load_idx_rejects_size_mismatches(
    tmp_path: Path, tiny_images: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = tiny_images
    write_idx_pair(tmp_path, images, labels, split="t10k", compress=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValidationError, match=r"declares shape \(5, 3, 4\), i.e. 60 data bytes"):
        load_idx(tmp_path)
    write_idx_pair(tmp_path, images[:4], labels, split="t10k", compress=False)
    with pytest.raises(ValidationError, match="holds 4 images but .* holds 5 labels"):
        load_idx(tmp_path)


def test_load_idx_reads_real_mnist_test_set() -> None:
    if not MNIST_T10K.is_dir():
        pytest.skip(f"MNIST test set not found at {MNIST_T10K}")
    mnist = load_dataset(f"idx:{MNIST_T10K}")
    assert (mnist.n_samples, mnist.n_features, mnist.n_classes) == (10000, 784, 10)
    assert mnist.labels.min() == 0 and mnist.labels.max() == 9
    assert mnist.inputs.min() == 0.0 and mnist.inputs.max() == 1.0
    train, test = train_test_split(mnist, train_size=8000, test_size=2000)
    assert (train.n_samples, test.n_samples) == (8000, 2000)
    np.testing.assert_array_equal(train.labels, mnist.labels[:8000])
    np.testing.assert_array_equal(test.inputs, mnist.inputs[8000:])


def test_npz_round_trip(tmp_path: Path) -> None:
    original = toy_dataset([0, 2, 1, 0], n_classes=5)
    save_npz(original, tmp_path / "toy.npz")
    loaded = load_npz(tmp_path / "toy.npz")
    np.testing.assert_array_equal(loaded.inputs, original.inputs)
    np.testing.assert_array_equal(loaded.labels, original.labels)
    assert loaded.n_classes == 5  # stored, not inferred from the largest label
    assert loaded.name == f"npz:{tmp_path / 'toy.npz'}"

    np.savez(tmp_path / "plain.npz", X=original.inputs, y=original.labels.astype(np.uint8))
    assert load_dataset(f"npz:{tmp_path / 'plain.npz'}").n_classes == 3


def test_load_npz_explains_bad_contents(tmp_path: Path) -> None:
    np.savez(tmp_path / "pixels.npz", X=np.array([[0, 128], [255, 3]]), y=[0, 1])
    with pytest.raises(
        ValidationError, match=r"X in .* must lie in \[0, 1\], got values from 0 to 255. Rescale"
    ):
        load_npz(tmp_path / "pixels.npz")
    np.savez(tmp_path / "unlabelled.npz", X=np.zeros((2, 2)))
    with pytest.raises(ValidationError, match=r"must hold arrays 'X' and 'y', missing 'y'"):
        load_npz(tmp_path / "unlabelled.npz")
    np.savez(tmp_path / "short.npz", X=np.zeros((3, 2)), y=[0, 1])
    with pytest.raises(ValidationError, match=r"labels must have shape \(3,\)"):
        load_npz(tmp_path / "short.npz")
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(ValidationError, match="cannot read .* as a .npz archive"):
        load_npz(tmp_path / "text.npz")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "digit",
            r"scheme must be one of 'digits', 'idx', 'npz', got 'digit'. Did you mean 'digits'",
        ),
        ("npy:/tmp/x.npy", "Did you mean 'npz'"),
        ("idx:", "needs a path after the colon"),
        ("digits:/tmp", "'digits' takes no path"),
    ],
)
def test_load_dataset_explains_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        load_dataset(spec)


# --- Splits -----------------------------------------------------------------------------------


def test_split_by_counts_takes_first_and_last() -> None:
    data = toy_dataset([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    train, test = train_test_split(data, train_size=6, test_size=3)
    np.testing.assert_array_equal(train.inputs, data.inputs[:6])
    np.testing.assert_array_equal(test.inputs, data.inputs[-3:])
    train, test = train_test_split(data, train_size=7)
    assert (train.n_samples, test.n_samples) == (7, 3)
    np.testing.assert_array_equal(test.inputs, data.inputs[7:])
    train, test = train_test_split(data, test_size=2)
    np.testing.assert_array_equal(train.inputs, data.inputs[:8])
    np.testing.assert_array_equal(test.inputs, data.inputs[8:])


def test_split_by_counts_refuses_overlap_and_empty_parts() -> None:
    data = toy_dataset([0, 1, 2, 0, 1])
    with pytest.raises(
        ValidationError, match=r"train_size \+ test_size must be at most n_samples=5"
    ):
        train_test_split(data, train_size=3, test_size=3)
    with pytest.raises(ValidationError, match="train_size must be below n_samples=5"):
        train_test_split(data, train_size=5)
    with pytest.raises(ValidationError, match="test_size must be a positive integer, got 0"):
        train_test_split(data, test_size=0)


def test_default_split_is_stratified_seeded_and_disjoint() -> None:
    digits = load_digits()
    train, test = train_test_split(digits)
    assert (train.n_samples, test.n_samples) == (1402, 395)
    per_class = np.bincount(digits.labels)
    expected_test = np.floor(0.22 * per_class + 0.5).astype(int)
    np.testing.assert_array_equal(np.bincount(test.labels, minlength=10), expected_test)
    # Rows are distinct in the digits data, so matching rows shows the parts are disjoint.
    train_rows = {row.tobytes() for row in train.inputs}
    assert not any(row.tobytes() in train_rows for row in test.inputs)
    again_train, _ = train_test_split(digits, seed=0)
    np.testing.assert_array_equal(again_train.inputs, train.inputs)
    other_train, _ = train_test_split(digits, seed=1)
    assert not np.array_equal(other_train.inputs, train.inputs)


def test_default_split_needs_classes_of_three() -> None:
    with pytest.raises(ValidationError, match="leaves no test samples"):
        train_test_split(toy_dataset([0, 0, 1, 1, 2]))
    with pytest.raises(ValidationError, match="seed must be a non-negative integer, got -1"):
        train_test_split(toy_dataset([0, 0, 0]), seed=-1)


# --- Number of classes ------------------------------------------------------------------------

STRAY = [0, 1, 2, 0, 1, 2, 7, 0, 1, 2]  # 3-class data with one stray label 7


def test_a_stray_label_warns_naming_the_empty_classes() -> None:
    inputs = np.zeros((len(STRAY), 2))
    with pytest.warns(EmptyClassWarning) as record:
        data = Dataset(inputs=inputs, labels=STRAY, name="toy")
    assert data.n_classes == 8
    assert len(record) == 1
    message = str(record[0].message)
    assert "n_classes = 8 was taken from the largest label" in message
    assert "classes 3, 4, 5, 6 have no sample; the labels are 0, 1, 2, 7" in message
    assert issubclass(EmptyClassWarning, UserWarning)


def test_inferred_classes_without_gaps_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = Dataset(inputs=np.zeros((4, 2)), labels=[2, 0, 1, 1], name="toy")
    assert data.n_classes == 3


def test_an_explicit_number_of_classes_refuses_the_stray_label() -> None:
    inputs = np.zeros((len(STRAY), 2))
    with pytest.raises(
        ValidationError,
        match=r"labels must lie in \[0, 3\) for n_classes=3, got label 7 \(1 of 10 samples\)",
    ):
        Dataset(inputs=inputs, labels=STRAY, n_classes=3, name="toy")
    with pytest.raises(ValidationError, match=r"labels must be >= 0, got labels -2, -1"):
        Dataset(inputs=np.zeros((3, 2)), labels=[-1, 0, -2], name="toy")


def test_one_absurd_label_is_listed_without_allocating_its_classes() -> None:
    with pytest.warns(EmptyClassWarning, match=r"1, 2, .*, 20, \.\.\. \(999999999 in all\)"):
        data = Dataset(inputs=np.zeros((2, 1)), labels=[0, 10**9], name="toy")
    assert data.n_classes == 10**9 + 1


def test_loaders_infer_warn_and_take_an_explicit_number(
    tmp_path: Path, tiny_images: tuple[np.ndarray, np.ndarray]
) -> None:
    path = tmp_path / "stray.npz"
    np.savez(path, X=np.zeros((len(STRAY), 4)), y=STRAY)
    with pytest.warns(EmptyClassWarning, match="classes 3, 4, 5, 6 have no sample"):
        assert load_dataset(f"npz:{path}").n_classes == 8
    with pytest.raises(ValidationError, match="n_classes=3, got label 7"):
        load_dataset(f"npz:{path}", n_classes=3)
    images, labels = tiny_images
    labels = np.array([0, 2, 1, 2, 9], dtype=np.uint8)
    write_idx_pair(tmp_path, images, labels, split="t10k", compress=False)
    with pytest.warns(EmptyClassWarning, match="classes 3, 4, 5, 6, 7, 8 have no sample"):
        assert load_idx(tmp_path).n_classes == 10
    with pytest.raises(ValidationError, match="n_classes=4, got label 9"):
        load_dataset(f"idx:{tmp_path}", n_classes=4)
    assert load_dataset("digits", n_classes=12).n_classes == 12
    with pytest.raises(ValidationError, match="n_classes=9, got label 9"):
        load_digits(n_classes=9)


def test_a_split_warns_when_a_class_has_no_training_sample() -> None:
    data = toy_dataset([0, 1, 0, 1, 0, 1, 2, 2])
    with pytest.warns(EmptyClassWarning) as record:
        train, test = train_test_split(data, train_size=6)
    message = str(record[0].message)
    assert "class 2 of Dataset(name='toy'" in message
    assert "has no training sample (all in the test part); the training labels are 0, 1" in message
    assert train.n_classes == test.n_classes == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train_test_split(data)  # stratified: every class trains


def test_test_size_zero_points_to_a_separate_test_file() -> None:
    data = toy_dataset([0, 1, 2, 0, 1])
    for sizes in ({"test_size": 0}, {"train_size": 5}):
        with pytest.raises(ValidationError) as info:
            train_test_split(data, **sizes)
        assert "load_train_and_test(train_spec, test_spec)" in str(info.value)
    with pytest.raises(ValidationError, match="a split needs a test part"):
        train_test_split(data, test_size=0)


# --- Separate test files ----------------------------------------------------------------------


def test_check_compatible_names_both_sizes() -> None:
    train = toy_dataset([0, 1, 2, 0])
    wide = Dataset(inputs=np.zeros((2, 3)), labels=[0, 1], n_classes=2, name="wide")
    with pytest.raises(
        ValidationError,
        match="test set 'wide' has 3 features, the training set 'toy' has 2; they must be equal",
    ):
        check_compatible(train, wide)
    with pytest.warns(EmptyClassWarning):
        stray = Dataset(inputs=np.zeros((3, 2)), labels=[0, 7, 5], name="stray")
    with pytest.raises(ValidationError) as info:
        check_compatible(train, stray)
    message = str(info.value)
    assert "test set 'stray' has labels 5, 7 (largest 7, i.e. at least 8 classes)" in message
    assert "training set 'toy' has n_classes=3" in message
    small = Dataset(inputs=np.zeros((2, 2)), labels=[1, 1], n_classes=2, name="small")
    checked = check_compatible(train, small)
    assert checked.n_classes == 3 and checked.labels.tolist() == [1, 1]
    with pytest.raises(ValidationError, match="train must be a Dataset"):
        check_compatible("toy", small)  # type: ignore[arg-type]


def test_train_on_a_whole_file_and_test_on_another(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "train.npz", X=rng.random((6, 5)), y=[0, 1, 2, 0, 1, 2])
    np.savez(tmp_path / "test.npz", X=rng.random((2, 5)), y=[2, 2])  # lacks classes 0 and 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train, test = load_train_and_test(
            f"npz:{tmp_path / 'train.npz'}", f"npz:{tmp_path / 'test.npz'}"
        )
    assert (train.n_samples, test.n_samples, train.n_classes, test.n_classes) == (6, 2, 3, 3)
    np.savez(tmp_path / "other.npz", X=rng.random((2, 5)), y=[0, 3])
    with pytest.raises(ValidationError, match="labels 3 .* training set .* has n_classes=3"):
        load_train_and_test(f"npz:{tmp_path / 'train.npz'}", f"npz:{tmp_path / 'other.npz'}")
    _, test = load_train_and_test(
        f"npz:{tmp_path / 'train.npz'}", f"npz:{tmp_path / 'other.npz'}", n_classes=4
    )
    assert test.n_classes == 4


def test_idx_train_and_test_splits_of_one_directory(
    tmp_path: Path, tiny_images: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = tiny_images
    write_idx_pair(tmp_path, images, labels, split="train", compress=False)
    write_idx_pair(tmp_path, images[:2], labels[:2], split="t10k", compress=True)
    spec = f"idx:{tmp_path}"
    train, test = load_train_and_test(spec, spec, train_split="train", test_split="t10k")
    assert (train.n_samples, test.n_samples, test.n_classes) == (5, 2, 3)


# --- Images and tabular data ------------------------------------------------------------------


def test_image_shape_marks_images_only(
    tmp_path: Path, tiny_images: tuple[np.ndarray, np.ndarray]
) -> None:
    digits = load_digits()
    assert digits.image_shape == (8, 8) and digits.is_image
    assert digits.subset([0, 1]).image_shape == (8, 8)
    images, labels = tiny_images
    write_idx_pair(tmp_path, images, labels, split="t10k", compress=False)
    assert load_idx(tmp_path).image_shape == (3, 4)  # from the IDX header, not a square
    # an npz of 64 features without image_shape is tabular, even though 64 is a square
    np.savez(tmp_path / "table.npz", X=np.zeros((2, 64)), y=[0, 1])
    table = load_npz(tmp_path / "table.npz")
    assert table.image_shape is None and not table.is_image
    np.savez(tmp_path / "pictures.npz", X=np.zeros((2, 6)), y=[0, 1], image_shape=[2, 3])
    assert load_npz(tmp_path / "pictures.npz").image_shape == (2, 3)
    save_npz(digits.subset([0, 1, 2]), tmp_path / "digits.npz")
    assert load_npz(tmp_path / "digits.npz").image_shape == (8, 8)
    save_npz(table, tmp_path / "table_again.npz")
    assert load_npz(tmp_path / "table_again.npz").image_shape is None


@pytest.mark.parametrize(
    ("image_shape", "message"),
    [
        ((3, 3), r"image_shape \(3, 3\) holds 9 pixels, but the inputs have 6 features"),
        ((6,), "image_shape must be two positive integers"),
        ((2.0, 3.0), "image_shape must be two positive integers"),
        ((-2, -3), "image_shape must be two positive integers"),
    ],
)
def test_image_shape_must_fit_the_features(image_shape: tuple[float, ...], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Dataset(
            inputs=np.zeros((2, 6)),
            labels=[0, 1],
            name="toy",
            image_shape=image_shape,  # type: ignore[arg-type]
        )

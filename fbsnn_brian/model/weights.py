"""The weights of a feedback network, their initialisation and their invariants.

:class:`NetworkWeights` is the base class of :class:`~fbsnn_brian.model.network.FeedbackNetwork`
that stores the weights as read-only arrays and keeps their three invariants: every array has
its shape and is finite, the weights leaving a layer have the signs of Dale's law, and the
loop gain stays below 1. It initialises the weights from the network's seed, hands out
read-only views, validates every new array, caps the feedback to the loop gain and sets or
restores all weights at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.model.biophysics import Biophysics
from fbsnn_brian.validation import check_finite_array, describe

__all__ = ["NetworkWeights"]

FloatArray = NDArray[np.float64]


def _is_list_of(value: Any, length: int) -> bool:
    """Whether ``value`` is a list, tuple or array of ``length`` entries (one per layer)."""
    if isinstance(value, np.ndarray):
        return value.ndim >= 1 and len(value) == length
    return isinstance(value, (list, tuple)) and len(value) == length


def _frozen(array: Any) -> FloatArray:
    """A read-only float64 copy that owns its data, so that no view of it can be made writeable."""
    copy: FloatArray = np.array(array, dtype=np.float64, copy=True)
    copy.flags.writeable = False
    return copy


def _view(array: FloatArray) -> FloatArray:
    """A read-only view of a stored weight array (writing to it raises numpy's ValueError)."""
    view: FloatArray = array.view()
    view.flags.writeable = False
    return view


class NetworkWeights:
    """Weights of a feedback network as read-only arrays, with their invariants.

    The base class of :class:`~fbsnn_brian.model.network.FeedbackNetwork`, which sets the
    layer sizes, ``theta``, ``feedback_gain``, ``seed`` and ``biophysics`` before it calls
    :meth:`_initialise_weights`; see that class for the weights' names and invariants.
    """

    n_inputs: int
    layer_sizes: tuple[int, ...]
    n_classes: int
    theta: float
    feedback_gain: float
    seed: int
    biophysics: Biophysics

    # ------------------------------------------------------------------ layers
    @property
    def n_layers(self) -> int:
        """Number of spiking layers."""
        return len(self.layer_sizes)

    # ------------------------------------------------------------------ weights
    def _initialise_weights(self) -> None:
        rng = np.random.default_rng(self.seed)
        sizes = self.layer_sizes

        def uniform(n_post: int, n_pre: int) -> FloatArray:
            # std 2/sqrt(n_pre): inputs with an rms near 0.3-0.5 give preactivations spread
            # over the clamp's linear range (0, theta), so the fixed point is non-trivial.
            bound = 2.0 * np.sqrt(3.0 / n_pre)
            return rng.uniform(-bound, bound, size=(n_post, n_pre))

        # every stored array is a read-only copy (_frozen); the properties hand out views
        self._input_weights = _frozen(uniform(sizes[0], self.n_inputs))
        forward = [uniform(sizes[k + 1], sizes[k]) for k in range(self.n_layers - 1)]
        self._forward_weights = tuple(
            _frozen(self._dale_initial(weights, k)) for k, weights in enumerate(forward)
        )
        feedback = rng.standard_normal((sizes[0], sizes[-1]))
        self._feedback_weights = _frozen(self._dale_initial(feedback, self.n_layers - 1))
        self._biases = tuple(_frozen(np.zeros(n)) for n in sizes)
        bound = 1.0 / np.sqrt(sizes[-1])
        self._readout_weights = _frozen(
            rng.uniform(-bound, bound, size=(self.n_classes, sizes[-1]))
        )
        self._readout_bias = _frozen(np.zeros(self.n_classes))
        self.restrict_feedback(max_gain=self.feedback_gain, exact=True)

    def presynaptic_signs(self, layer: int) -> FloatArray:
        """Sign every weight leaving layer ``layer`` (0-based) must have: +1, -1, or 0 (free).

        Without Dale's law every entry is 0 (no constraint); with it, +1 for the layer's
        excitatory neurons and -1 for its inhibitory ones (:mod:`fbsnn_brian.model.biophysics`).
        """
        size = self.layer_sizes[layer]
        if self.biophysics.excitatory_fraction is None:
            return np.zeros(size)
        signs: FloatArray = np.where(self.biophysics.excitatory_mask(size), 1.0, -1.0)
        return signs

    def _dale_initial(self, weights: FloatArray, pre_layer: int) -> FloatArray:
        """Initial weights with Dale's signs: magnitudes kept, inhibition scaled to balance."""
        signs = self.presynaptic_signs(pre_layer)
        if not signs.any():
            return weights
        n_excitatory = int(np.sum(signs > 0))
        n_inhibitory = len(signs) - n_excitatory
        # expected input zero: the fewer inhibitory columns carry as much total weight
        balance = n_excitatory / n_inhibitory if n_inhibitory else 1.0
        column_scale: FloatArray = np.where(signs > 0, 1.0, balance)
        return np.abs(weights) * (column_scale * signs)[None, :]

    def _check_signs(self, name: str, weights: FloatArray, pre_layer: int) -> FloatArray:
        signs = self.presynaptic_signs(pre_layer)
        wrong = int(np.sum(weights * signs[None, :] < 0))
        if wrong:
            raise ValidationError(
                f"FeedbackNetwork: {name} breaks Dale's law in {wrong} entries: every weight "
                f"leaving an excitatory neuron of layer {pre_layer + 1} must be >= 0 and every "
                "weight leaving an inhibitory one <= 0 (biophysics.excitatory_fraction = "
                f"{self.biophysics.excitatory_fraction})."
            )
        return weights

    def _set(self, name: str, value: Any, shape: tuple[int, ...]) -> FloatArray:
        return _frozen(
            check_finite_array("FeedbackNetwork", name, value, ndim=len(shape), shape=shape)
        )

    @property
    def input_weights(self) -> FloatArray:
        """F, shape (n_1, n_inputs)."""
        return _view(self._input_weights)

    @input_weights.setter
    def input_weights(self, value: Any) -> None:
        self._input_weights = self._set(
            "input_weights", value, (self.layer_sizes[0], self.n_inputs)
        )

    @property
    def forward_weights(self) -> tuple[FloatArray, ...]:
        """W^(l+1) for l = 1..N-1, each of shape (n_(l+1), n_l); empty for one layer."""
        return tuple(_view(weights) for weights in self._forward_weights)

    @forward_weights.setter
    def forward_weights(self, value: Sequence[Any]) -> None:
        if not _is_list_of(value, self.n_layers - 1):
            raise ValidationError(
                f"FeedbackNetwork: forward_weights must be a list of {self.n_layers - 1} "
                f"matrices, got {describe(value)}."
            )
        sizes = self.layer_sizes
        self._forward_weights = tuple(
            self._check_signs(
                f"forward_weights[{k}]",
                self._set(f"forward_weights[{k}]", w, (sizes[k + 1], sizes[k])),
                k,
            )
            for k, w in enumerate(value)
        )

    @property
    def feedback_weights(self) -> FloatArray:
        """W^fb, shape (n_1, n_N): from the last layer back to the first."""
        return _view(self._feedback_weights)

    @feedback_weights.setter
    def feedback_weights(self, value: Any) -> None:
        candidate = self._check_signs(
            "feedback_weights",
            self._set("feedback_weights", value, (self.layer_sizes[0], self.layer_sizes[-1])),
            self.n_layers - 1,
        )
        gain = self._loop_gain(candidate)
        if gain >= 1:
            raise ValidationError(
                f"FeedbackNetwork: feedback_weights make the feedback loop gain "
                f"||W_fb||_2 / theta{self._gain_suffix()} = {gain:.4g}, which must be < 1 for "
                "the fixed point to exist and be unique; scale the matrix down or call "
                "restrict_feedback()."
            )
        self._feedback_weights = candidate

    @property
    def biases(self) -> tuple[FloatArray, ...]:
        """b^l per layer, each of shape (n_l,)."""
        return tuple(_view(bias) for bias in self._biases)

    @biases.setter
    def biases(self, value: Sequence[Any]) -> None:
        if not _is_list_of(value, self.n_layers):
            raise ValidationError(
                f"FeedbackNetwork: biases must be a list of {self.n_layers} vectors, got "
                f"{describe(value)}."
            )
        self._biases = tuple(
            self._set(f"biases[{k}]", b, (n,))
            for k, (b, n) in enumerate(zip(value, self.layer_sizes, strict=False))
        )

    @property
    def readout_weights(self) -> FloatArray:
        """C, shape (n_classes, n_N)."""
        return _view(self._readout_weights)

    @readout_weights.setter
    def readout_weights(self, value: Any) -> None:
        self._readout_weights = self._set(
            "readout_weights", value, (self.n_classes, self.layer_sizes[-1])
        )

    @property
    def readout_bias(self) -> FloatArray:
        """d, shape (n_classes,)."""
        return _view(self._readout_bias)

    @readout_bias.setter
    def readout_bias(self, value: Any) -> None:
        self._readout_bias = self._set("readout_bias", value, (self.n_classes,))

    # ------------------------------------------------------------------ contraction
    def _gain_suffix(self) -> str:
        return "" if self.n_layers == 1 else " x prod_l ||W^l||_2 / theta^(N-1)"

    def _loop_gain(self, feedback: FloatArray) -> float:
        gain = float(np.linalg.norm(feedback, 2)) / self.theta
        for weights in self._forward_weights:
            gain *= float(np.linalg.norm(weights, 2)) / self.theta
        return gain

    def loop_gain(self) -> float:
        """Upper bound of the contraction factor of the feedback loop.

        One layer: ``||W_fb||_2 / theta``. Several layers: the product of every connection's
        spectral norm in the loop divided by ``theta`` per layer, a Lipschitz bound of the map
        ``a^N -> a^N`` (phi is 1/theta-Lipschitz). Below 1 the fixed point is unique.
        """
        return self._loop_gain(self._feedback_weights)

    def restrict_feedback(self, *, max_gain: float | None = None, exact: bool = False) -> float:
        """Rescale the feedback weights so that :meth:`loop_gain` is at most ``max_gain``.

        Parameters
        ----------
        max_gain : float, optional
            Bound in (0, 1); default ``feedback_gain``.
        exact : bool
            If True, scale to exactly ``max_gain`` even when the gain is already smaller.

        Returns
        -------
        float
            The factor the feedback weights were multiplied by (1 if unchanged).
        """
        bound = self._check_max_gain(
            "FeedbackNetwork.restrict_feedback",
            self.feedback_gain if max_gain is None else max_gain,
        )
        gain = self.loop_gain()
        if gain == 0 or (gain <= bound and not exact):
            return 1.0
        factor = bound / gain
        self._feedback_weights = _frozen(self._feedback_weights * factor)
        return factor

    @staticmethod
    def _check_max_gain(owner: str, max_gain: Any) -> float:
        if (
            isinstance(max_gain, bool)
            or not isinstance(max_gain, (int, float, np.integer, np.floating))
            or not (0 < max_gain < 1)
        ):
            raise ValidationError(
                f"{owner}: max_gain must be a number in (0, 1), got {describe(max_gain)}."
            )
        return float(max_gain)

    def set_learned_feedback(self, weights: Any, *, max_gain: float) -> None:
        """Set feedback weights a learning step produced, capped to the loop gain ``max_gain``.

        A step may leave the contraction, so the candidate is scaled down to the loop gain
        ``max_gain`` (if above it) before the setter validates it (shape, finiteness, Dale's
        signs, gain < 1). On an error the network keeps its previous feedback weights.
        """
        bound = self._check_max_gain("FeedbackNetwork.set_learned_feedback", max_gain)
        candidate = self._set(
            "feedback_weights", weights, (self.layer_sizes[0], self.layer_sizes[-1])
        )
        gain = self._loop_gain(candidate)
        if gain > bound:
            candidate = candidate * (bound / gain)
        self.feedback_weights = candidate

    def set_learned_weights(self, arrays: Mapping[str, Any], *, max_gain: float) -> None:
        """Set every weight a learning step produced, capping the loop gain to ``max_gain``.

        Parameters
        ----------
        arrays : mapping of str to array_like
            Every name of :meth:`weight_arrays`.
        max_gain : float
            Loop gain in (0, 1) the feedback weights are scaled down to if the new weights
            exceed it (:meth:`set_learned_feedback`).

        Raises
        ------
        ValidationError
            If a name is missing or an array is malformed or breaks Dale's law; the network
            then keeps all its previous weights.
        """
        self._check_max_gain("FeedbackNetwork.set_learned_weights", max_gain)
        with self._all_or_nothing():
            self._set_non_feedback("FeedbackNetwork.set_learned_weights", arrays)
            self.set_learned_feedback(arrays["feedback_weights"], max_gain=max_gain)

    # ------------------------------------------------------------------ invariants
    def check_invariants(self) -> None:
        """Check every weight: shape, finiteness, Dale's signs and a loop gain below 1.

        The setters keep these invariants and the stored arrays are read-only, so this finds
        only what bypassed them (or forward weights that raised the loop gain); the
        simulations call it before they start.

        Raises
        ------
        ValidationError
            Naming the first array that breaks an invariant, its value and what is allowed.
        """
        sizes = self.layer_sizes
        expected: list[tuple[str, Any, tuple[int, ...]]] = [
            ("input_weights", self._input_weights, (sizes[0], self.n_inputs)),
            ("feedback_weights", self._feedback_weights, (sizes[0], sizes[-1])),
            ("readout_weights", self._readout_weights, (self.n_classes, sizes[-1])),
            ("readout_bias", self._readout_bias, (self.n_classes,)),
        ]
        forward = tuple(self._forward_weights)
        biases = tuple(self._biases)
        for name, values, count in (
            ("forward_weights", forward, self.n_layers - 1),
            ("biases", biases, self.n_layers),
        ):
            if len(values) != count:
                raise ValidationError(
                    f"FeedbackNetwork.check_invariants: {name} holds {len(values)} arrays, "
                    f"the {self.n_layers}-layer network needs {count}."
                )
        expected += [
            (f"forward_weights[{k}]", w, (sizes[k + 1], sizes[k])) for k, w in enumerate(forward)
        ]
        expected += [(f"biases[{k}]", b, (sizes[k],)) for k, b in enumerate(biases)]
        for name, value, shape in expected:
            check_finite_array(
                "FeedbackNetwork.check_invariants", name, value, ndim=len(shape), shape=shape
            )
        for k, weights in enumerate(forward):
            self._check_signs(f"forward_weights[{k}]", weights, k)
        self._check_signs("feedback_weights", self._feedback_weights, self.n_layers - 1)
        gain = self.loop_gain()
        if not gain < 1:
            raise ValidationError(
                f"FeedbackNetwork.check_invariants: the feedback loop gain ||W_fb||_2 / theta"
                f"{self._gain_suffix()} = {gain:.4g} must be < 1 for the fixed point to exist "
                "and be unique; call restrict_feedback() or set smaller weights."
            )

    @contextmanager
    def _all_or_nothing(self) -> Iterator[None]:
        """Restore every weight if the block raises (the stored arrays are immutable)."""
        saved = (
            self._input_weights,
            self._forward_weights,
            self._feedback_weights,
            self._biases,
            self._readout_weights,
            self._readout_bias,
        )
        try:
            yield
        except BaseException:
            (
                self._input_weights,
                self._forward_weights,
                self._feedback_weights,
                self._biases,
                self._readout_weights,
                self._readout_bias,
            ) = saved
            raise

    # ------------------------------------------------------------------ weight arrays
    def weight_arrays(self) -> dict[str, FloatArray]:
        """Every weight and bias by name (``forward_weights_k``, ``biases_k`` per layer).

        The arrays are read-only views; set new ones with :meth:`set_weight_arrays`.
        """
        arrays = {
            "input_weights": _view(self._input_weights),
            "feedback_weights": _view(self._feedback_weights),
            "readout_weights": _view(self._readout_weights),
            "readout_bias": _view(self._readout_bias),
        }
        for k, weights in enumerate(self._forward_weights):
            arrays[f"forward_weights_{k}"] = _view(weights)
        for k, bias in enumerate(self._biases):
            arrays[f"biases_{k}"] = _view(bias)
        return arrays

    def _set_non_feedback(self, owner: str, arrays: Mapping[str, Any]) -> None:
        if not isinstance(arrays, Mapping):
            raise ValidationError(
                f"{owner}: arrays must be a mapping of names to arrays, got {describe(arrays)}."
            )
        missing = sorted(set(self.weight_arrays()) - set(arrays))
        if missing:
            raise ValidationError(f"{owner}: missing {', '.join(missing)}.")
        self.input_weights = arrays["input_weights"]
        self.forward_weights = [arrays[f"forward_weights_{k}"] for k in range(self.n_layers - 1)]
        self.biases = [arrays[f"biases_{k}"] for k in range(self.n_layers)]
        self.readout_weights = arrays["readout_weights"]
        self.readout_bias = arrays["readout_bias"]

    def set_weight_arrays(self, arrays: Mapping[str, Any]) -> None:
        """Set every weight and bias from :meth:`weight_arrays`' names (validated).

        All or nothing: if an array is missing, malformed, breaks Dale's law or the new weights
        make the loop gain >= 1, a ValidationError is raised and no weight changes.
        """
        with self._all_or_nothing():
            self._set_non_feedback("FeedbackNetwork.set_weight_arrays", arrays)
            self.feedback_weights = arrays["feedback_weights"]

"""The ``fbsnn`` command.

``fbsnn check equilibrium`` simulates the free phase of a random contraction network on a few
digits and reports how far the simulated rates are from the reference fixed point.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from fbsnn_brian.errors import FbsnnError, ValidationError

__all__ = ["check_equilibrium", "main"]


def _layer_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--layers must be comma-separated positive integers such as 100 or 64,32, got {text!r}"
        ) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--layers must be positive integers, got {text!r}")
    return sizes


def check_equilibrium(
    *,
    layer_sizes: Sequence[int] = (100,),
    n_inputs: int = 64,
    duration_tau: float = 30.0,
    n_samples: int = 5,
    seed: int = 0,
    device: str = "runtime",
    neuron: str = "if",
) -> dict[str, Any]:
    """Distance between simulated free-phase rates and the reference fixed point.

    A random contraction network (seeded) sees the first ``n_samples`` digits (the first
    ``n_inputs`` of their 64 pixel features) for ``duration_tau`` units of tau.

    Returns
    -------
    dict
        ``mean_abs_error``, ``max_abs_error`` (over all neurons and samples),
        ``duration_tau``, ``n_neurons``, ``n_samples``, ``device``, ``wall_time_s`` and the
        per-layer mean errors.
    """
    from brian2 import ms

    from fbsnn_brian.datasets import load_digits
    from fbsnn_brian.model import FeedbackNetwork
    from fbsnn_brian.protocol import FreePhase, Protocol
    from fbsnn_brian.reference import fixed_point_batch

    owner = "fbsnn check equilibrium"
    digits = load_digits()
    if not 1 <= n_inputs <= digits.n_features:
        raise ValidationError(
            f"{owner}: --inputs must be between 1 and {digits.n_features} (the digits' pixels), "
            f"got {n_inputs}."
        )
    if not 1 <= n_samples <= digits.n_samples:
        raise ValidationError(
            f"{owner}: --samples must be between 1 and {digits.n_samples}, got {n_samples}."
        )
    if not np.isfinite(duration_tau) or duration_tau <= 0:
        raise ValidationError(
            f"{owner}: --duration must be a positive number of tau, got {duration_tau}."
        )
    inputs = digits.inputs[:n_samples, :n_inputs]
    network = FeedbackNetwork(
        n_inputs=n_inputs, layer_sizes=list(layer_sizes), n_classes=10, neuron=neuron, seed=seed
    )
    protocol = Protocol([FreePhase(duration=duration_tau * network.tau)])
    start = time.perf_counter()
    recording = protocol.run(network, inputs=inputs, device=device)
    wall = time.perf_counter() - start
    reference = fixed_point_batch(network.rate_model(), inputs)
    errors = [
        np.abs(simulated - exact)
        for simulated, exact in zip(recording.layer_rates(), reference, strict=True)
    ]
    everything = np.concatenate([e.ravel() for e in errors])
    return {
        "mean_abs_error": float(everything.mean()),
        "max_abs_error": float(everything.max()),
        "layer_mean_abs_error": [float(e.mean()) for e in errors],
        "mean_rate": float(np.concatenate([r.ravel() for r in recording.layer_rates()]).mean()),
        "duration_tau": float(duration_tau),
        "duration_ms": float(duration_tau * network.tau / ms),
        "n_neurons": network.n_neurons,
        "layer_sizes": list(network.layer_sizes),
        "n_samples": int(n_samples),
        "loop_gain": network.loop_gain(),
        "device": device,
        "wall_time_s": wall,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fbsnn", description="Feedback spiking neural networks in Brian2 (SPIDE)."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="numerical self-checks against the reference")
    checks = check.add_subparsers(dest="check", required=True)
    equilibrium = checks.add_parser(
        "equilibrium", help="distance of simulated free-phase rates to the reference fixed point"
    )
    equilibrium.add_argument(
        "--layers", type=_layer_sizes, default=[100], help="e.g. 100 or 64,32,16"
    )
    equilibrium.add_argument("--inputs", type=int, default=64, help="input features (<= 64)")
    equilibrium.add_argument(
        "--duration", type=float, default=30.0, help="free phase, in units of tau"
    )
    equilibrium.add_argument("--samples", type=int, default=5, help="number of digits simulated")
    equilibrium.add_argument("--seed", type=int, default=0)
    equilibrium.add_argument("--neuron", default="if", help="if or lif")
    equilibrium.add_argument(
        "--device", default="runtime", help="runtime, numpy, cython or cpp_standalone"
    )
    equilibrium.add_argument("--json", action="store_true", help="print JSON only")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fbsnn`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        if args.command == "check" and args.check == "equilibrium":
            result = check_equilibrium(
                layer_sizes=args.layers,
                n_inputs=args.inputs,
                duration_tau=args.duration,
                n_samples=args.samples,
                seed=args.seed,
                device=args.device,
                neuron=args.neuron,
            )
            if args.json:
                print(json.dumps(result, indent=2))
            else:
                print(
                    f"free phase of {result['duration_tau']:g} tau on {result['n_samples']} "
                    f"digits, {result['n_neurons']} neurons {result['layer_sizes']}, "
                    f"device {result['device']}:\n"
                    f"  mean |a - a*| = {result['mean_abs_error']:.5f}\n"
                    f"  max  |a - a*| = {result['max_abs_error']:.5f}\n"
                    f"  loop gain {result['loop_gain']:.3f}, mean rate {result['mean_rate']:.3f}, "
                    f"wall time {result['wall_time_s']:.1f} s"
                )
            return 0
    except FbsnnError as error:
        print(f"fbsnn: error: {error}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

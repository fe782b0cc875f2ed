"""What the ``fbsnn`` command prints for the results of its checks, training and evaluation.

Each helper prints one result dictionary as a few human-readable lines (``--json`` prints the
dictionary instead).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "print_alignment",
    "print_equilibrium",
    "print_evaluation",
    "print_gradient",
    "print_training",
]


def print_equilibrium(result: dict[str, Any]) -> None:
    print(
        f"free phase of {result['duration_tau']:g} tau on {result['n_samples']} "
        f"digits, {result['n_neurons']} neurons {result['layer_sizes']}, "
        f"device {result['device']}:\n"
        f"  mean |a - a*| = {result['mean_abs_error']:.5f}\n"
        f"  max  |a - a*| = {result['max_abs_error']:.5f}\n"
        f"  mean |a - a*| over the {result['n_active']} of {result['n_rates']} active neurons "
        f"(a* > 0) = {result['active_mean_abs_error'] or float('nan'):.5f}\n"
        f"  loop gain {result['loop_gain']:.3f}, mean rate {result['mean_rate']:.3f}, "
        f"wall time {result['wall_time_s']:.1f} s"
    )


def print_gradient(result: dict[str, Any]) -> None:
    print(
        f"SPIDE update by spikes ({result['n_samples']} digits, layers {result['layer_sizes']}, "
        f"T_f = {result['free_duration_tau']:g} tau, T_b = {result['perturbed_duration_tau']:g} "
        f"tau, s = {result['scale']:g}), cosine over F, W, W_fb, b with\n"
        f"  exact IDE at the same rates:   {result['cosine_vs_ide']:.5f}\n"
        f"  exact IDE at the equilibrium:  {result['cosine_vs_ide_equilibrium']:.5f}\n"
        f"  finite differences:            {result['cosine_vs_finite_difference']:.5f}"
    )


def print_training(metrics: dict[str, Any]) -> None:
    epochs = len(metrics["train_accuracy_per_epoch"])
    validation = (
        ""
        if metrics["validation_accuracy"] is None
        else f", validation accuracy {metrics['validation_accuracy']:.4f} on "
        f"{metrics['n_validation']} samples"
    )
    cache = " (cached build)" if metrics.get("build_cache_hit") else ""
    print(
        f"trained {epochs} epochs on {metrics['n_train']} samples in "
        f"{metrics['wall_time_s']:.0f} s "
        f"({metrics['samples_per_s']:.0f} samples/s of training simulation, "
        f"compile {metrics['compile_time_s']:.0f} s{cache})\n"
        f"  train accuracy {metrics['train_accuracy']:.4f}{validation}\n"
        f"  test accuracy {metrics['test_accuracy']:.4f} on {metrics['n_test']} samples "
        "(evaluated once, after training)\n"
        f"  mean rates: forward {metrics['mean_forward_rate']:.3f}, backward "
        f"{metrics['mean_backward_rate']:.3f} per tau; loop gain {metrics['loop_gain']:.3f}\n"
        f"  preset {metrics['config']['preset']}; written to {metrics['run_dir']}"
    )


def print_evaluation(result: dict[str, Any]) -> None:
    print(f"test accuracy {result['test_accuracy']:.4f} on {result['n_test']} samples")
    print("confusion matrix (rows: true class, columns: predicted class):")
    for row in result["confusion_matrix"]:
        print("  " + " ".join(f"{count:5d}" for count in row))


def print_alignment(result: dict[str, Any]) -> None:
    print(
        f"alignment of SPIDE's update ({result['state']} weights, {result['n_samples']} "
        f"samples, hidden parameters):"
    )
    print(f"  vs the ideal IF model's IDE gradient     {result['cosine_vs_ideal_ide']:.4f}")
    print(f"  vs the measured rate model's IDE         {result['cosine_vs_measured_ide']:.4f}")
    label = f"vs finite differences ({result['n_directions']} directions)"
    print(f"  {label:40s} {result['cosine_vs_finite_difference']:.4f}")
    print(
        f"  measured IDE vs finite differences      "
        f"{result['measured_ide_vs_finite_difference']:.4f}"
    )

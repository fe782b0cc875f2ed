"""Claims table of a plausibility sweep: the SPIDE paper's claims against measured evidence.

    fbsnn sweep protocols/plausibility.toml --out plausibility.nc
    python analysis/claims_table.py plausibility.nc [--out claims.md] [--figure conditions.png]

See :mod:`fbsnn_brian.experiments.claims` for what each row measures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fbsnn_brian.analysis.plotting import plot_conditions
from fbsnn_brian.experiments.claims import claims_table
from fbsnn_brian.io.netcdf import read_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", help="sweep result (.nc or .zarr) written by fbsnn sweep")
    parser.add_argument("--out", help="also write the table to this Markdown file")
    parser.add_argument("--figure", help="also plot accuracy and sparsity per condition here")
    args = parser.parse_args()
    sweep = read_dataset(args.sweep)
    table = claims_table(sweep)
    if args.figure:
        plot_conditions(sweep, args.figure)
    if args.out:
        Path(args.out).write_text(table)
    print(table)


if __name__ == "__main__":
    main()

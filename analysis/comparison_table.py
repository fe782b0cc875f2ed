"""The rule comparison's Markdown table, re-rendered from the dataset ``fbsnn compare`` wrote.

    fbsnn compare --dataset digits --regime paper --seeds 2 --epochs 3 \\
        --out analysis/results/compare_paper
    python analysis/comparison_table.py analysis/results/compare_paper/compare.nc \\
        --out analysis/results/compare_paper/compare.md

``fbsnn compare`` writes the same table itself (:func:`fbsnn_brian.experiments.comparison.
comparison_table`); this script renders it again from the raw output, with the table's current
columns.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fbsnn_brian.experiments.comparison import comparison_table
from fbsnn_brian.io.netcdf import read_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("compare", help="compare.nc written by fbsnn compare")
    parser.add_argument("--out", help="also write the table to this Markdown file")
    args = parser.parse_args()
    table = comparison_table(read_dataset(args.compare))
    if args.out:
        Path(args.out).write_text(table)
    print(table)


if __name__ == "__main__":
    main()

"""Describe a directory prepared by gpu_prepare.sh: its parts, their sizes, the commit.

python benchmarks/gpu_manifest.py gpu_prepared 9.0     # writes gpu_prepared/manifest.json
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(part.stat().st_size for part in path.rglob("*") if part.is_file())
    return path.stat().st_size


def main() -> int:
    root, capability = Path(sys.argv[1]), float(sys.argv[2])
    parts = {path.name: _size(path) for path in sorted(root.iterdir())}
    parts.pop("manifest.json", None)
    parts.pop("out", None)  # the dry run's output
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    compiled = root / "compile.json"
    manifest = {
        "commit": commit,
        "compute_capability": capability,
        "builds": json.loads(compiled.read_text())["compile"] if compiled.is_file() else None,
        "bytes": parts,
        "total_mib": round(sum(parts.values()) / 2**20, 1),
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

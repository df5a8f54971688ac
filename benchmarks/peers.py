"""The peers' environment: dag-factory, DuckDB and polars, never project dependencies.

A separate virtual environment under the user's cache folder (`$XDG_CACHE_HOME` or `~/.cache`,
`skylift-bench/peers-<python>`), made on first use. It sees the project venv's packages through a
`.pth` file, so Airflow, pandas and pyarrow are the very same installation the Skylift side uses,
and pip adds only what is missing there. Delete the folder to rebuild it.

    .venv/bin/python -m benchmarks.peers     # make it (or check it) and print its interpreter
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from benchmarks.common import BenchError, log

# Versions measured for RESULTS.md; bump together with a re-run of `make bench`.
PEER_PACKAGES = ("dag-factory==1.1.0", "duckdb==2.0.1", "polars==2.1.0")
PROBE = "import dagfactory, duckdb, polars; polars.DataFrame({'a': [1]}).sum()"


def peers_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "skylift-bench" / f"peers-py{sys.version_info.major}{sys.version_info.minor}"


def peer_python() -> str:
    """The peers' interpreter, creating and filling the environment if it is missing or incomplete."""
    folder = peers_dir()
    python = folder / "bin" / "python"
    if python.exists() and _works(python):
        return str(python)
    log(f"making the peers' environment in {folder} ({', '.join(PEER_PACKAGES)})")
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # The project venv's packages, after the peers' own on sys.path.
    Path(purelib, "skylift-project-venv.pth").write_text(
        "\n".join(dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])) + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PEER_PACKAGES],
                   check=True)
    if not _works(python):
        raise BenchError(f"the peers' environment {folder} cannot import dag-factory, duckdb and polars; "
                         "delete the folder and run again")
    return str(python)


def _works(python: Path) -> bool:
    return subprocess.run([str(python), "-c", PROBE], check=False, capture_output=True).returncode == 0


def versions(python: str) -> dict[str, str]:
    code = ("import json, importlib.metadata as m; print(json.dumps({p: m.version(p) for p in "
            "['dag-factory', 'duckdb', 'polars']}))")
    import json

    return json.loads(subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout)


if __name__ == "__main__":
    python = peer_python()
    print(python, versions(python))

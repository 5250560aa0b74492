"""Where a report came from: package versions, the mlsafety source commit, file hashes."""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata as importlib_metadata
from pathlib import Path

PACKAGES = ("mlsafety", "torch", "numpy", "scipy", "scikit-learn", "kornia", "faiss-cpu",
            "matplotlib", "safetensors")


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that shape results (read from metadata; nothing imported)."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_commit(start: str | Path | None = None) -> str | None:
    """The commit of the mlsafety source checkout this code runs from, or None (an installed wheel).

    Reads ``.git/HEAD`` and the refs directly: no ``git`` process, no dependency. Only a
    checkout that holds ``src/mlsafety`` counts, so a virtual environment inside some other
    repository does not report that repository's commit.
    """
    here = Path(start) if start is not None else Path(__file__).resolve()
    for folder in [here, *here.parents]:
        git = folder / ".git"
        if not (folder / "src" / "mlsafety").is_dir():
            continue
        if git.is_file():  # a worktree: "gitdir: <path>"
            text = git.read_text().strip()
            if not text.startswith("gitdir:"):
                return None
            git = (folder / text.partition(":")[2].strip()).resolve()
        if not git.is_dir():
            continue
        try:
            head = (git / "HEAD").read_text().strip()
        except OSError:
            return None
        if not head.startswith("ref:"):
            return head or None
        ref = head.partition(":")[2].strip()
        common = git
        if (git / "commondir").is_file():
            common = (git / (git / "commondir").read_text().strip()).resolve()
        for base in (git, common):
            if (base / ref).is_file():
                return (base / ref).read_text().strip() or None
        for base in (git, common):
            packed = base / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    sha, _, name = line.partition(" ")
                    if name.strip() == ref:
                        return sha
        return None
    return None

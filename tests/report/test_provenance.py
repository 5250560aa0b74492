"""Provenance: file hashes and the git commit of a source checkout."""

from __future__ import annotations

import hashlib

from mlsafety.report import file_sha256, git_commit


def test_file_sha256_matches_hashlib(tmp_path) -> None:
    path = tmp_path / "weights.bin"
    data = bytes(range(256)) * 5000  # more than one 1 MiB block? no: 1.28 MB, two blocks
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


def _checkout(root, head: str) -> None:
    (root / "src" / "mlsafety").mkdir(parents=True)
    (root / ".git" / "refs" / "heads").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text(head)


def test_git_commit_reads_branch_refs_and_packed_refs(tmp_path) -> None:
    _checkout(tmp_path, "ref: refs/heads/main\n")
    inside = tmp_path / "src" / "mlsafety"
    (tmp_path / ".git" / "packed-refs").write_text("# pack-refs\n" + "a" * 40 + " refs/heads/main\n")
    assert git_commit(inside) == "a" * 40
    (tmp_path / ".git" / "refs" / "heads" / "main").write_text("b" * 40 + "\n")
    assert git_commit(inside) == "b" * 40


def test_git_commit_ignores_unrelated_repositories(tmp_path) -> None:
    # a virtual environment inside someone else's repository: no src/mlsafety there
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("c" * 40)
    site = tmp_path / "venv" / "lib" / "mlsafety"
    site.mkdir(parents=True)
    assert git_commit(site) is None

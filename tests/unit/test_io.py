"""Atomic writes: a target is replaced only by complete content, and no temp file stays behind."""

from __future__ import annotations

import ast
import os
import stat
from pathlib import Path

import pytest

import mcr.io
from mcr.io import atomic_path, atomic_paths, atomic_write, temp_path


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_success_replaces_the_target_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old\n")
    with atomic_write(target) as fh:
        fh.write("new\n")
        assert target.read_text() == "old\n"  # untouched until the block completes
    assert _listing(tmp_path) == {"out.json": b"new\n"}
    with atomic_write(target, "wb") as fh:
        fh.write(b"\x00\x01")
    assert _listing(tmp_path) == {"out.json": b"\x00\x01"}


def test_an_exception_leaves_the_old_file_untouched_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="midway"), atomic_write(target, "wb") as fh:
        fh.write(b"half")
        raise RuntimeError("midway")
    assert _listing(tmp_path) == {"out.bin": b"old"}
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt  # an interrupt cleans up too
    assert _listing(tmp_path) == {"out.bin": b"old"}


def test_a_failed_first_write_creates_no_target(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="disk full"), atomic_path(tmp_path / "new" / "f") as tmp:
        assert tmp.parent == tmp_path / "new"  # parents are created, the temp sits beside
        raise OSError("disk full")
    assert _listing(tmp_path / "new") == {}


def test_atomic_path_yields_a_fixed_hidden_temp_name_beside_the_target(tmp_path: Path) -> None:
    """Fixed, so ``torch.save`` (which names its archive after the file) writes equal bytes."""
    target = tmp_path / "last.pt"
    with atomic_path(target) as tmp:
        assert tmp == temp_path(target) == tmp_path / ".last.pt.tmp"
        assert tmp.read_bytes() == b""  # exists, empty: a stale temp file is truncated
        tmp.write_bytes(b"ckpt")
    assert _listing(tmp_path) == {"last.pt": b"ckpt"}


def test_a_stale_temp_file_is_never_moved_into_place(tmp_path: Path) -> None:
    target = tmp_path / "f"
    temp_path(target).write_bytes(b"left by a killed process")
    with atomic_path(target):
        pass  # nothing written
    assert _listing(tmp_path) == {"f": b""}


def test_group_writes_are_all_or_nothing_and_land_in_order(tmp_path: Path) -> None:
    a, b, manifest = tmp_path / "a", tmp_path / "b", tmp_path / "manifest.json"
    a.write_bytes(b"old a")
    with pytest.raises(ValueError, match="bad b"), atomic_paths([a, b, manifest]) as temps:
        temps[a].write_bytes(b"new a")
        raise ValueError("bad b")
    assert _listing(tmp_path) == {"a": b"old a"}

    moved: list[str] = []
    real_replace = os.replace

    def spy(src: str | Path, dst: str | Path) -> None:
        moved.append(Path(dst).name)
        real_replace(src, dst)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "replace", spy)
        with atomic_paths([a, b, manifest]) as temps:
            for target, tmp in temps.items():
                tmp.write_bytes(target.name.encode())
    assert moved == ["a", "b", "manifest.json"]  # the manifest lands last
    assert _listing(tmp_path) == {"a": b"a", "b": b"b", "manifest.json": b"manifest.json"}


def test_text_mode_options_and_permissions(tmp_path: Path) -> None:
    target = tmp_path / "t.csv"
    with atomic_write(target, newline="") as fh:
        fh.write("é,1\r\n")
    assert target.read_bytes() == "é,1\r\n".encode()  # utf-8, no newline translation
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # like open(), not mkstemp


def test_bad_arguments(tmp_path: Path) -> None:
    bad_mode = atomic_write(tmp_path / "f", "a")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode='a'"), bad_mode:
        pass
    with pytest.raises(ValueError, match="no duplicates"), atomic_paths([tmp_path / "f"] * 2):
        pass
    assert _listing(tmp_path) == {}


def test_io_is_a_bottom_layer_without_torch() -> None:
    """Every layer may write atomically, so this module imports nothing above the stdlib."""
    tree = ast.parse(Path(mcr.io.__file__).read_text())
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    assert not [m for m in imported if m.split(".")[0] in ("mcr", "torch", "numpy")]

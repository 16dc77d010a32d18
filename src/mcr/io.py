"""Atomic file writes: a target holds either its old content or its complete new content.

Pipeline outputs (checkpoints, metrics, Parquet files, files extracted from wheels) are written
through here, so an interrupted job never leaves a truncated file that a later step -- or a
resumed run -- would trust. Bottom layer: no torch, nothing from the rest of the package.

Content goes to a temp file beside its target (same folder, hence the same filesystem, so
``os.replace`` is an atomic rename), which is moved onto the target only when writing succeeded
and removed when it failed. The temp file is named ``.<target name>.tmp``: hidden and
deterministic, because ``torch.save`` names the archive inside a checkpoint after the file it
writes, so a random temp name would make two identical checkpoints differ byte for byte. A fixed
name assumes one writer per target at a time (the pipeline gives every output one job); a temp
file left behind by a killed process is truncated and reused by the next write.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Literal


def temp_path(path: str | Path) -> Path:
    """The temp file that :func:`atomic_paths` writes ``path`` through."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp")


@contextmanager
def atomic_paths(paths: Iterable[str | Path]) -> Iterator[dict[Path, Path]]:
    """All-or-nothing writes of several files: yields ``{target: temp path}``.

    Write each target's content to its temp path inside the ``with`` block. When the block
    completes, the temp files are moved onto their targets in the order given (so the last
    target, e.g. a manifest that vouches for the others, lands last); when it raises, every temp
    file is removed and no target is touched. Missing parent folders are created. Each temp file
    exists, empty, when the block starts, created as ``open(path, "wb")`` creates a file
    (permissions from the umask), so a stale temp file is never moved into place.
    """
    targets = [Path(p) for p in paths]
    if len(set(targets)) != len(targets):
        raise ValueError(f"paths {sorted(map(str, targets))}: expected no duplicates")
    temps = {target: temp_path(target) for target in targets}
    try:
        for target, tmp in temps.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp.open("wb").close()
        yield temps
        for target, tmp in temps.items():
            os.replace(tmp, target)
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield the temp path to write ``path`` through (for writers that take a file name, such as
    ``torch.save`` or ``pyarrow.parquet.write_table``); see :func:`atomic_paths`."""
    with atomic_paths([path]) as temps:
        yield temps[Path(path)]


@contextmanager
def atomic_write(
    path: str | Path,
    mode: Literal["w", "wb"] = "w",
    *,
    encoding: str = "utf-8",
    newline: str | None = None,
) -> Iterator[IO[Any]]:
    """Yield a file object open for writing (text ``"w"`` or binary ``"wb"``) whose content
    replaces ``path`` when the block completes; see :func:`atomic_paths`.

    ``encoding`` and ``newline`` apply to text mode, as in :func:`open`. The file is closed (so
    its content is flushed) before it is moved into place.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode={mode!r}: expected 'w' (text) or 'wb' (binary)")
    text = {"encoding": encoding, "newline": newline} if mode == "w" else {}
    with atomic_path(path) as tmp, open(tmp, mode, **text) as fh:
        yield fh

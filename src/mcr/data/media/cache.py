"""Writing a media cache: decoded clips streamed into contract Parquet files, in row groups.

Clips are decoded in worker processes (one file each, in order) and written a row group at a
time, so memory holds one row group, never the dataset. A clip that cannot be decoded is skipped
(counted, and listed with its reason in the log and in ``manifest.json``) or stops the extraction
with that one error, as ``on_corrupt`` says; a clip outside the dataset's definition (UCF-101's
videos without sound) is always left out and listed as ``rejected``. The three Parquet files
and the manifest appear together or not at all (:func:`mcr.io.atomic_paths`); the manifest lands
last.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mcr.data.contract.spec import META_KEY, MODALITY_TYPES
from mcr.data.dataset import SPLITS
from mcr.data.media.decode import MediaDecodeError, MediaRejected
from mcr.io import atomic_paths

log = logging.getLogger(__name__)

OnCorrupt = Literal["skip", "fail"]
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Clip:
    """One sample to decode: its id, group (actor, source video), label and media files."""

    sample_id: str
    group: str
    label: int
    files: tuple[str, ...]  # what the decoder opens, in the order it expects


@dataclass(frozen=True)
class Modality:
    """A cached modality: per-sample shape and element type (``float16``, ``uint8``, ...)."""

    shape: tuple[int, ...]
    dtype: str

    def arrow(self) -> pa.DataType:
        return pa.list_(MODALITY_TYPES[self.dtype], math.prod(self.shape))


@dataclass
class CacheReport:
    """What an extraction wrote: rows per split, and the clips it skipped or padded."""

    rows: dict[str, int] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)  # undecodable
    rejected: list[dict[str, str]] = field(default_factory=list)  # outside the definition
    padded: list[str] = field(default_factory=list)
    seconds: float = 0.0


class CorruptMediaError(RuntimeError):
    """A clip failed to decode and ``on_corrupt`` is ``fail``."""


Decoder = Callable[[Clip], tuple[dict[str, np.ndarray], bool]]


def _decode_one(decoder: Decoder, clip: Clip) -> tuple[Clip, dict[str, np.ndarray] | None, Any]:
    """Worker side: the clip's arrays and whether it was padded, or (file, reason, kind)."""
    try:
        arrays, padded = decoder(clip)
    except MediaRejected as exc:
        return clip, None, (exc.path, exc.reason, "rejected")
    except MediaDecodeError as exc:
        return clip, None, (exc.path, exc.reason, "corrupt")
    return clip, arrays, padded


def write_media_cache(
    out: str | Path,
    *,
    name: str,
    num_classes: int,
    modalities: Mapping[str, Modality],
    splits: Mapping[str, Sequence[Clip]],
    decoder: Decoder,
    manifest: Mapping[str, Any],
    on_corrupt: OnCorrupt = "skip",
    workers: int = 0,
    row_group_size: int = 64,
    progress: bool = True,
) -> CacheReport:
    """Decode every clip of ``splits`` with ``decoder`` into ``out/{train,val,test}.parquet``.

    ``decoder`` must be picklable (a module-level function or a ``functools.partial`` of one):
    it runs in ``workers`` processes (0: one per core). ``manifest`` is written to
    ``out/manifest.json`` with the rows, skipped and padded clips added.
    """
    import time

    from tqdm import tqdm

    out, report, start = Path(out), CacheReport(), time.perf_counter()
    schema = pa.schema(
        [("sample_id", pa.string()), ("group", pa.string()), ("label", pa.int64()),
         ("source", pa.string()), *((m, spec.arrow()) for m, spec in modalities.items())],
        metadata={META_KEY: json.dumps({
            "name": name, "task": "classification", "num_classes": num_classes,
            "modalities": {m: list(spec.shape) for m, spec in modalities.items()},
        }).encode()},
    )  # fmt: skip
    total = sum(len(splits[s]) for s in SPLITS)
    workers = workers or os.cpu_count() or 1
    targets = [out / f"{s}.parquet" for s in SPLITS] + [out / MANIFEST]
    bar = tqdm(total=total, desc=f"{name}: decoding", unit="clip", disable=not progress,
               file=sys.stderr, mininterval=2.0)  # fmt: skip
    with atomic_paths(targets) as temps, ProcessPoolExecutor(workers) as pool:
        for split in SPLITS:
            rows: list[tuple[Clip, dict[str, np.ndarray]]] = []
            written = 0
            with pq.ParquetWriter(
                temps[out / f"{split}.parquet"], schema, compression="zstd"
            ) as w:
                results = pool.map(_decode_one, [decoder] * len(splits[split]), splits[split],
                                   chunksize=4)  # fmt: skip
                for clip, arrays, extra in results:
                    bar.update()
                    if arrays is None:
                        bad_file, reason, kind = extra
                        if kind == "rejected":
                            report.rejected.append(
                                {"sample_id": clip.sample_id, "file": bad_file, "reason": reason}
                            )
                            continue
                        if on_corrupt == "fail":
                            raise CorruptMediaError(
                                f"{bad_file}: cannot decode ({reason}); set on_corrupt: skip to "
                                "leave such clips out"
                            )
                        log.warning("skipping %s: cannot decode (%s)", bad_file, reason)
                        report.skipped.append(
                            {"sample_id": clip.sample_id, "file": bad_file, "reason": reason}
                        )
                        continue
                    if extra:
                        report.padded.append(clip.sample_id)
                    rows.append((clip, arrays))
                    written += 1
                    if len(rows) == row_group_size:
                        w.write_table(_row_group(rows, schema, modalities))
                        rows = []
                if rows:
                    w.write_table(_row_group(rows, schema, modalities))
            report.rows[split] = written
            if written == 0:
                raise CorruptMediaError(f"{name}: no clip of the {split} split could be decoded")
        report.seconds = time.perf_counter() - start
        body = {**manifest, "rows": report.rows, "skipped": report.skipped,
                "rejected": report.rejected, "padded": report.padded,
                "decode_seconds": round(report.seconds, 2), "workers": workers}  # fmt: skip
        temps[out / MANIFEST].write_text(json.dumps(body, indent=2) + "\n")
    bar.close()
    log.info("%s: %s rows, %d skipped, %d rejected, %d padded, %.1f s", name, report.rows,
             len(report.skipped), len(report.rejected), len(report.padded),
             report.seconds)  # fmt: skip
    return report


def _row_group(
    rows: list[tuple[Clip, dict[str, np.ndarray]]],
    schema: pa.Schema,
    modalities: Mapping[str, Modality],
) -> pa.Table:
    columns: dict[str, pa.Array] = {
        "sample_id": pa.array([c.sample_id for c, _ in rows], pa.string()),
        "group": pa.array([c.group for c, _ in rows], pa.string()),
        "label": pa.array([c.label for c, _ in rows], pa.int64()),
        "source": pa.array([";".join(c.files) for c, _ in rows], pa.string()),
    }
    for m, spec in modalities.items():
        for clip, arrays in rows:
            if tuple(arrays[m].shape) != spec.shape:  # a decoder bug, not a bad file
                raise ValueError(
                    f"{clip.sample_id}: modality {m!r} decoded to shape "
                    f"{tuple(arrays[m].shape)}; expected {spec.shape}"
                )
        flat = np.concatenate([np.asarray(a[m], dtype=spec.dtype).reshape(-1) for _, a in rows])
        columns[m] = pa.FixedSizeListArray.from_arrays(pa.array(flat), math.prod(spec.shape))
    return pa.table(columns, schema=schema)


class AudioVisualConfig(Protocol):
    """What every benchmark extractor's params dataclass has (cremad, ave, ucf101)."""

    root: str
    on_corrupt: OnCorrupt
    workers: int
    row_group_size: int

    def shapes(self) -> dict[str, tuple[int, ...]]: ...


def write_audio_visual_cache(
    out: str | Path,
    config: AudioVisualConfig,
    *,
    name: str,
    num_classes: int,
    splits: Mapping[str, Sequence[Clip]],
    decoder: Decoder,
    manifest: Mapping[str, Any],
    progress: bool = True,
) -> CacheReport:
    """:func:`write_media_cache` for a benchmark: a float16 ``audio`` spectrogram and uint8
    ``video`` frames of ``config.shapes()``, the decoding settings from ``config``, and the
    dataset's name and root at the head of the manifest."""
    shapes = config.shapes()
    return write_media_cache(
        out,
        name=name,
        num_classes=num_classes,
        modalities={
            "audio": Modality(shapes["audio"], "float16"),
            "video": Modality(shapes["video"], "uint8"),
        },
        splits=splits,
        decoder=decoder,
        manifest={"dataset": name, "root": str(Path(config.root)), **manifest},
        on_corrupt=config.on_corrupt,
        workers=config.workers,
        row_group_size=config.row_group_size,
        progress=progress,
    )

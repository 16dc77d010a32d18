"""The contract's fixed vocabulary: the metadata key, reserved columns, label types, the error.

Shared by the validator, the reader and the writer; the format itself is described in the
package docstring (:mod:`mcr.data.contract`).
"""

from __future__ import annotations

import pyarrow as pa

META_KEY = b"mcr"
RESERVED = ("sample_id", "label", "group")
LABEL_TYPES = {"classification": pa.int64(), "regression": pa.float64()}
#: Element types a modality column may hold: float32 features; float16 spectrograms and uint8
#: video frames of a media cache (half / a quarter of the bytes; models convert on the device).
MODALITY_TYPES = {"float32": pa.float32(), "float16": pa.float16(), "uint8": pa.uint8()}


class DataContractError(ValueError):
    """A dataset breaks the contract; ``violations`` holds one line per problem.

    All problems are reported at once because fixing a dataset one error per run is slow.
    """

    def __init__(self, violations: list[str]) -> None:
        self.violations = list(violations)
        lines = "\n".join(f"  - {v}" for v in self.violations)
        super().__init__(f"{len(self.violations)} data contract violation(s):\n{lines}")


def is_string(t: pa.DataType) -> bool:
    """Both Arrow string types count as strings (pandas and polars may write ``large_string``)."""
    return pa.types.is_string(t) or pa.types.is_large_string(t)

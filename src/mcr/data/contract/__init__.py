"""The on-disk dataset contract: how to bring your own dataset.

A dataset is a folder holding ``train.parquet``, ``val.parquet`` and ``test.parquet``, one row
per sample, with these columns:

``sample_id`` (string)
    Unique within its file *and* across the three files (a sample lives in one split only).
``group`` (string, optional)
    Speaker, actor, subject, ... A group value may appear in one split only, so nobody's samples
    leak from training into evaluation.
``label``
    ``int64`` class ids in ``[0, num_classes)`` for classification; finite ``float64`` targets
    for regression.
``<modality>`` (one column per modality, named after it)
    ``fixed_size_list<float32>``: the sample's array flattened in C order, so its list size is
    the product of the modality's shape. Media caches store spectrograms as ``float16`` and
    video frames as ``uint8`` elements (read back in that dtype). A plain variable-length list is accepted when every row
    has exactly that length. NaN and inf are rejected.
any other string column
    An annotation (e.g. the synthetic set's ``info_group``): loaded into ``Split.annotations``
    for analysis, never shown to a model. Columns of any other type are rejected.

No value may be null and no split may be empty. Each file's Parquet schema metadata holds the
key ``mcr`` with a JSON object, identical in task, classes and modalities across the files::

    {"name": "my_set", "task": "classification", "num_classes": 7,
     "modalities": {"audio": [128], "video": [16, 512]}}

``task`` is ``"classification"`` (``num_classes >= 2``) or ``"regression"`` (``num_classes``
is 1); ``modalities`` maps each modality column to its per-sample shape, in the order models
see them. Writing one split by hand with pyarrow::

    cols = {"sample_id": ids, "label": labels,  # labels: int64 numpy array
            "audio": pa.FixedSizeListArray.from_arrays(pa.array(audio.ravel()), 128)}
    table = pa.table(cols).replace_schema_metadata({"mcr": json.dumps(meta)})
    pq.write_table(table, "my_set/train.parquet")

or build a :class:`~mcr.data.dataset.MultimodalDataset` and call :func:`write_dataset`.

:func:`read_dataset` checks the whole contract before loading anything and raises one
:class:`DataContractError` listing every violation (file, column, offending values, what was
expected), so a dataset is fixed in one pass instead of one error at a time. Checks and loading
are vectorised: each modality goes from Arrow straight into one contiguous tensor.
"""

from mcr.data.contract.read import read_dataset
from mcr.data.contract.spec import META_KEY, RESERVED, DataContractError
from mcr.data.contract.write import write_dataset, write_split

__all__ = [
    "META_KEY",
    "RESERVED",
    "DataContractError",
    "read_dataset",
    "write_dataset",
    "write_split",
]

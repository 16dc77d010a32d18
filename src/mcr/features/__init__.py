"""Feature extraction with frozen pretrained models: a stage between data and training.

Above :mod:`mcr.models` (it runs a model) and below training: it turns a built dataset into the
dataset a run trains on. Callers that load datasets by name use :func:`load_dataset`.
"""

from mcr.features.load import load_dataset
from mcr.features.pretrained import MOBILENET_FILE, to_uint8, with_image_features

__all__ = ["MOBILENET_FILE", "load_dataset", "to_uint8", "with_image_features"]

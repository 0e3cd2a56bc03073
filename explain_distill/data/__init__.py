"""The data layer: a classification data set, split and scaled, with each column's type and domain.

- :mod:`.dataset`: :class:`Dataset` (train/test arrays, names, kind, input shape, the scaling and
  its inverse, where each row came from);
- :mod:`.schema`: each column's type (real, integer, binary, one-hot level) and observed range;
- :mod:`.split`: from raw arrays to a split, scaled data set (missing rows, labels, imputation);
- :mod:`.csv`: reading a CSV file (missing markers, one-hot encoding, ids refused);
- :mod:`.missing`: the missing-value markers and policies;
- :mod:`.builtin`: ``load_dataset``: digits, breast_cancer, wine, iris and mnist1d, all offline;
- :mod:`.saved`: a Dataset on disk (safetensors + JSON).
"""

from .builtin import DATASETS, load_dataset
from .dataset import Dataset, Kind
from .missing import MISSING_MARKERS, MISSING_POLICIES, MissingPolicy
from .saved import load_saved_dataset, save_dataset
from .schema import Column, Domain, Schema, infer_schema

__all__ = [
    "DATASETS",
    "MISSING_MARKERS",
    "MISSING_POLICIES",
    "Column",
    "Dataset",
    "Domain",
    "Kind",
    "MissingPolicy",
    "Schema",
    "infer_schema",
    "load_dataset",
    "load_saved_dataset",
    "save_dataset",
]

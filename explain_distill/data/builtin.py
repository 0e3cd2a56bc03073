"""The built-in data sets, all offline: scikit-learn's digits, breast_cancer, wine and iris, and mnist1d.

``mnist1d`` is generated locally with ``mnist1d.data.make_dataset`` (never ``get_dataset``, which
downloads).
"""

from __future__ import annotations

import numpy as np

from .dataset import Dataset

__all__ = ["DATASETS", "load_dataset"]

DATASETS = ("digits", "breast_cancer", "wine", "iris", "mnist1d")


def _make_mnist1d(n_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Generate mnist1d locally; ``make_dataset`` reseeds numpy's global RNG, so restore it."""
    from mnist1d.data import get_dataset_args, make_dataset

    state = np.random.get_state()
    try:
        args = get_dataset_args()
        args.num_samples = n_samples
        args.seed = seed
        d = make_dataset(args)
    finally:
        np.random.set_state(state)
    X = np.concatenate([d["x"], d["x_test"]]).astype(np.float64)
    y = np.concatenate([d["y"], d["y_test"]])
    return X, y


def load_dataset(
    name: str = "digits",
    *,
    test_size: float = 0.25,
    seed: int = 0,
    n_samples: int | None = None,
) -> Dataset:
    """Load a built-in data set by name: digits, breast_cancer, wine, iris or mnist1d.

    ``n_samples`` applies to mnist1d only (default 5000, the reference size).
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"Unknown data set {name!r}. Available data sets: {', '.join(DATASETS)}.")
    from sklearn import datasets as skd

    if name == "mnist1d":
        X, y = _make_mnist1d(n_samples or 5000, seed=42 if seed is None else seed)
        return Dataset.from_arrays(
            X, y, feature_names=[f"t{j}" for j in range(X.shape[1])], class_names=[str(i) for i in range(10)],
            kind="signal", input_shape=(1, X.shape[1]), name=name, test_size=test_size, seed=seed,
        )
    loader = {
        "digits": skd.load_digits,
        "breast_cancer": skd.load_breast_cancer,
        "wine": skd.load_wine,
        "iris": skd.load_iris,
    }[name]
    bunch = loader()
    X, y = bunch.data, bunch.target
    if name == "digits":
        return Dataset.from_arrays(
            X, y, feature_names=[f"pixel_{r}_{c}" for r in range(8) for c in range(8)],
            class_names=[str(c) for c in bunch.target_names], kind="image", input_shape=(1, 8, 8), name=name,
            test_size=test_size, seed=seed,
        )
    return Dataset.from_arrays(
        X, y, feature_names=[str(f) for f in bunch.feature_names], class_names=[str(c) for c in bunch.target_names],
        kind="tabular", name=name, test_size=test_size, seed=seed,
    )

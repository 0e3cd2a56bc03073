"""The built-in data sets, all offline: scikit-learn's digits, breast_cancer, wine and iris, mnist1d,
and two image sets at real sizes made from the digits, digits28 and digits32_rgb.

``mnist1d`` is generated locally with ``mnist1d.data.make_dataset`` (never ``get_dataset``, which
downloads).

``digits28`` (1x28x28 grayscale) and ``digits32_rgb`` (3x32x32 colour) are rendered from
scikit-learn's 1,797 8x8 digits, nothing downloaded: each source digit is scaled to [0, 1],
upsampled by cubic interpolation (``scipy.ndimage.zoom``) to 20x20 (24x24 for the colour set),
then every output image draws its own seeded affine jitter (rotation +-15 degrees, scale
0.85-1.15, shear +-0.2, shift +-2 pixels; ``scipy.ndimage.affine_transform``, bilinear) onto the
blank canvas, and a stroke-thickness change (a 2x2 grey dilation for thicker strokes, a power
>1 of the intensities for thinner ones, or neither).  The colour set then paints the stroke in
one random colour over a background of another (their luminances at least 0.35 apart, drawn
independently of the class, so colour says nothing about the digit), with a faint seeded
gradient and pixel noise.  The sources are shuffled and reused in turn (5,000 images use each
about 2.8 times), and the train/test split keeps all variants of a source digit on one side,
so held-out images are of digits the teacher never saw.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_int
from .dataset import Dataset

__all__ = ["DATASETS", "load_dataset"]

DATASETS = ("digits", "breast_cancer", "wine", "iris", "mnist1d", "digits28", "digits32_rgb")

#: The built-in image sets rendered from the 8x8 digits: name -> (canvas side, digit side, colour).
_RENDERED = {"digits28": (28, 20, False), "digits32_rgb": (32, 24, True)}


def _render_digits(name: str, n_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X (n, C*side*side) float32 in [0, 1], y (n,), source digit index (n,)) for a rendered set."""
    from scipy import ndimage
    from sklearn.datasets import load_digits

    side, digit, colour = _RENDERED[name]
    bunch = load_digits()
    src = bunch.images.astype(np.float64) / 16.0
    rng = np.random.default_rng(seed)
    up = np.clip(np.stack([ndimage.zoom(im, digit / 8, order=3) for im in src]), 0.0, 1.0)
    order = np.concatenate([rng.permutation(len(src)) for _ in range(-(-n_samples // len(src)))])[:n_samples]
    out = np.empty((n_samples, side, side), dtype=np.float64)
    c_in = (digit - 1) / 2.0
    c_out = (side - 1) / 2.0
    for i, s in enumerate(order):
        theta = np.deg2rad(rng.uniform(-15, 15))
        zoom = rng.uniform(0.85, 1.15)
        shear = rng.uniform(-0.2, 0.2)
        shift = rng.uniform(-2, 2, size=2)
        rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        forward = zoom * rot @ np.array([[1.0, shear], [0.0, 1.0]])  # source -> canvas, about the centres
        inv = np.linalg.inv(forward)
        offset = c_in - inv @ (np.array([c_out, c_out]) + shift)
        img = ndimage.affine_transform(up[s], inv, offset=offset, output_shape=(side, side), order=1, cval=0.0)
        thick = rng.uniform()
        if thick < 0.3:
            img = ndimage.grey_dilation(img, size=(2, 2))
        elif thick > 0.7:
            img = img ** rng.uniform(1.5, 2.5)
        out[i] = np.clip(img, 0.0, 1.0)
    y = bunch.target[order]
    if not colour:
        return out.reshape(n_samples, -1).astype(np.float32), y, order
    rgb = np.empty((n_samples, 3, side, side), dtype=np.float64)
    lum = np.array([0.299, 0.587, 0.114])
    ramp = np.linspace(-1.0, 1.0, side)
    for i in range(n_samples):
        while True:
            fg, bg = rng.uniform(0, 1, size=3), rng.uniform(0, 1, size=3)
            if abs(float(lum @ fg - lum @ bg)) >= 0.35:
                break
        a = rng.uniform(0, 2 * np.pi)
        grad = 0.08 * (np.cos(a) * ramp[None, :] + np.sin(a) * ramp[:, None])
        m = out[i]
        back = bg[:, None, None] + grad[None]
        rgb[i] = back * (1 - m) + fg[:, None, None] * m + rng.normal(0, 0.02, size=(3, side, side))
    return np.clip(rgb, 0.0, 1.0).reshape(n_samples, -1).astype(np.float32), y, order


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
    """Load a built-in data set by name: digits, breast_cancer, wine, iris, mnist1d, digits28 or digits32_rgb.

    ``n_samples`` applies to the generated sets, mnist1d, digits28 and digits32_rgb (default 5000,
    the reference size; see the module docstring for how the images are made).
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"Unknown data set {name!r}. Available data sets: {', '.join(DATASETS)}.")
    from sklearn import datasets as skd

    if name in _RENDERED:
        from .split import split_and_scale

        n = 5000 if n_samples is None else check_int(n_samples, "n_samples", low=100)
        X, y, groups = _render_digits(name, n, seed=seed)
        side, _, colour = _RENDERED[name]
        channels = ("red", "green", "blue") if colour else ("pixel",)
        shape = (len(channels), side, side)
        names = [f"{ch}_{r}_{c}" for ch in channels for r in range(side) for c in range(side)]
        how = (f"rendered offline from scikit-learn's 8x8 digits: cubic upsampling, seeded affine jitter and stroke "
               f"thickness{', random stroke and background colours' if colour else ''}; variants of one source digit "
               f"stay on one side of the split")
        return Dataset(**split_and_scale(
            X, y, np.arange(len(X)), row_kind="index", feature_names=names, class_names=[str(i) for i in range(10)],
            kind="image", input_shape=shape, name=name, test_size=test_size, seed=seed, scale=None, missing="error",
            notes=[how], missing_report=None, encoding=None, groups=groups,
        ))

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

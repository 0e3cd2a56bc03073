"""Property tests: random shapes, dtypes and values thrown at the validation layer.

Each check either returns a clean array (right shape, dtype, finite values) or raises ValueError
or TypeError -- never anything else, never a silently bad array.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from explain_distill import _validation as v

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

numeric_dtypes = st.sampled_from(
    [np.float16, np.float32, np.float64, np.int8, np.int32, np.int64, np.uint8, np.bool_, np.complex64]
)
any_array = hnp.arrays(
    dtype=numeric_dtypes,
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
    elements=None,
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3), st.just(object()),
)
ragged = st.lists(st.lists(scalars, max_size=3), max_size=4)
string_arrays = hnp.arrays(dtype=hnp.unicode_string_dtypes(max_len=3), shape=hnp.array_shapes(max_dims=2, max_side=4))
inputs = st.one_of(any_array, ragged, string_arrays, scalars)


@SETTINGS
@given(X=inputs, dtype=st.sampled_from([np.float64, np.float32, None]), allow_empty=st.booleans())
def test_check_array_2d_returns_clean_floats_or_raises(X, dtype, allow_empty):
    try:
        out = v.check_array_2d(X, dtype=dtype, allow_empty=allow_empty)
    except (ValueError, TypeError) as exc:
        assert str(exc)  # a message, not a bare exception
        return
    assert isinstance(out, np.ndarray) and out.ndim == 2
    assert out.dtype.kind in "biuf"
    if dtype is not None:
        assert out.dtype == dtype
    if not allow_empty:
        assert out.shape[0] >= 1 and out.shape[1] >= 1
    if out.dtype.kind == "f":
        assert np.isfinite(out).all()


@SETTINGS
@given(X=hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6),
                    elements=st.floats(-1e6, 1e6)))
def test_finite_2d_floats_pass_through_unchanged(X):
    out = v.check_array_2d(X)
    np.testing.assert_array_equal(out, X)
    assert v.check_array_2d(X, dtype=np.float64) is X  # no copy


@SETTINGS
@given(X=hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 6)), elements=st.floats(-10, 10)),
       r=st.integers(0, 5), c=st.integers(0, 5), bad=st.sampled_from([np.nan, np.inf, -np.inf]))
def test_any_non_finite_cell_is_reported_with_its_row(X, r, c, bad):
    r, c = r % X.shape[0], c % X.shape[1]
    X = X.copy()
    X[r, c] = bad
    with pytest.raises(ValueError, match=f"row {r}, 'column {c}'"):
        v.check_array_2d(X)


@SETTINGS
@given(P=inputs, k=st.one_of(st.none(), st.integers(1, 5)))
def test_check_soft_labels_returns_distributions_or_raises(P, k):
    try:
        out = v.check_soft_labels(P, n_classes=k)
    except (ValueError, TypeError) as exc:
        assert str(exc)
        return
    assert out.ndim == 2 and out.shape[0] >= 1
    if k is not None:
        assert out.shape[1] == k
    assert np.isfinite(out).all() and (out >= 0).all()
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-9)


@SETTINGS
@given(P=hnp.arrays(np.float64, st.tuples(st.integers(1, 8), st.integers(2, 5)), elements=st.floats(0.01, 1.0)))
def test_normalised_rows_are_accepted(P):
    P = P / P.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(v.check_soft_labels(P), P, atol=1e-12)


@SETTINGS
@given(y=inputs)
def test_check_labels_and_targets_return_1d_or_raise(y):
    for check in (v.check_labels, v.check_targets):
        try:
            out = check(y)
        except (ValueError, TypeError) as exc:
            assert str(exc)
            continue
        if check is v.check_targets:
            hard, soft = out
            assert (hard is None) != (soft is None)
            out = hard if hard is not None else None
            if soft is not None:
                assert soft.ndim == 2
                continue
        assert out.ndim == 1


@SETTINGS
@given(names=st.one_of(st.lists(st.one_of(st.text(max_size=4), st.integers()), max_size=5), st.text(max_size=3),
                       st.none()), n=st.integers(0, 5))
def test_check_names_returns_unique_strings_or_raises(names, n):
    try:
        out = v.check_names(names, n)
    except (ValueError, TypeError) as exc:
        assert str(exc)
        return
    assert len(out) == n == len(set(out)) and all(isinstance(s, str) and s.strip() for s in out)


@SETTINGS
@given(value=scalars)
def test_scalar_checks_return_in_range_or_raise(value):
    for check, ok in (
        (lambda x: v.check_positive(x, "t"), lambda r: r > 0 and np.isfinite(r)),
        (lambda x: v.check_positive(x, "t", strict=False, upper=10), lambda r: 0 <= r <= 10),
        (lambda x: v.check_int(x, "n", low=1, high=64), lambda r: isinstance(r, int) and 1 <= r <= 64),
        (lambda x: v.check_fraction(x, "f"), lambda r: 0 <= r <= 1),
        (lambda x: v.check_fraction(x, "f", inclusive=False), lambda r: 0 < r < 1),
    ):
        try:
            result = check(value)
        except (ValueError, TypeError) as exc:
            assert str(exc)
            continue
        assert ok(result)

"""Property tests (hypothesis): checkpoints round-trip any tree exactly; optimizers never crash on in-range input,
keep finite input finite, and agree bit for bit with their pure update functions."""
import math, os, tempfile

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck
from hypothesis.extra import numpy as hnp

from minima.checkpoint import save, load
from test_checkpoint import same

SETTINGS = dict(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])

# ---- checkpoints ----------------------------------------------------------------------------------------------

DTYPES = [np.bool_, np.int8, np.int64, np.uint32, np.float16, np.float32, np.float64, np.complex128]
arrays = st.sampled_from(DTYPES).flatmap(
    lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)))
scalars = st.sampled_from([np.float32, np.float64, np.int64, np.uint8]).flatmap(
    lambda dt: hnp.from_dtype(np.dtype(dt)).map(dt))
atoms = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
         | st.text(max_size=8) | arrays | scalars)
keys = st.integers(-5, 5) | st.text(max_size=4)
trees = st.recursive(atoms, lambda inner: st.lists(inner, max_size=4) | st.lists(inner, max_size=4).map(tuple)
                     | st.dictionaries(keys, inner, max_size=4), max_leaves=20)


@settings(**SETTINGS)
@given(trees)
def test_checkpoint_round_trip_is_exact(tree):
    with tempfile.TemporaryDirectory() as d:
        save(tree, os.path.join(d, 'c'))
        same(tree, load(os.path.join(d, 'c')))

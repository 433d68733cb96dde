"""minima.autograd: every op's gradient against central finite differences (float64), broadcasting,
dtype preservation, accumulation, graph recording and freeing."""
import gc
import weakref

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

from minima.autograd import Tensor, no_grad, enable_grad, is_grad_enabled
from graph_nodes import count_graph_nodes

SETTINGS = settings(deadline=None, max_examples=25)


def finite_diff(f, *arrays, h=1e-6):
    "Central differences of the scalar f(*arrays) (plain numpy) w.r.t. each array."
    grads = []
    for x in arrays:
        g = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            old = x[i]
            x[i] = old + h; up = f(*arrays)
            x[i] = old - h; down = f(*arrays)
            x[i] = old
            g[i] = (up - down) / (2 * h)
        grads.append(g)
    return grads


def check_grads(op, *arrays, rtol=1e-6, atol=1e-8, seed=0):
    """Compare backward() of sum(op(*tensors) * w) with finite differences; w random so that
    errors cannot cancel in the sum."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    out_shape = op(*[Tensor(a) for a in arrays]).shape
    w = np.random.default_rng(seed).normal(size=out_shape)
    ts = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    (op(*ts) * Tensor(w)).sum().backward()
    numeric = finite_diff(lambda *xs: float((op(*[Tensor(x) for x in xs]).data * w).sum()), *arrays)
    for t, n in zip(ts, numeric):
        assert t.grad.shape == t.shape and t.grad.dtype == np.float64
        np.testing.assert_allclose(t.grad, n, rtol=rtol, atol=atol)


def rand(shape, seed, low=-2.0, high=2.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


small_shapes = array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
seeds = st.integers(0, 2**32 - 1)


# ---------------------------------------------------------------- binary ops with broadcasting
BINARY = {
    'add': lambda a, b: a + b,
    'sub': lambda a, b: a - b,
    'mul': lambda a, b: a * b,
    'div': lambda a, b: a / b,
}


@pytest.mark.parametrize('name', list(BINARY))
@SETTINGS
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4), seed=seeds)
def test_binary_grad_broadcast(name, shapes, seed):
    sa, sb = shapes.input_shapes
    a, b = rand(sa, seed), rand(sb, seed + 1)
    if name == 'div': b = np.sign(b) * (np.abs(b) + 0.5)       # keep away from 0
    check_grads(BINARY[name], a, b)


SCALAR_OPS = {
    'radd': lambda t: 1.5 + t, 'rsub': lambda t: 1.5 - t, 'rmul': lambda t: 1.5 * t,
    'rdiv': lambda t: 1.5 / t, 'sub_scalar': lambda t: t - 1.5, 'div_scalar': lambda t: t / 1.5,
    'np_rsub': lambda t: np.float64(1.5) - t, 'np_rdiv': lambda t: np.float32(1.5) / t,
    'neg': lambda t: -t, 'pow2': lambda t: t ** 2, 'pow_half': lambda t: t ** 0.5,
    'pow_neg': lambda t: t ** -1.5, 'pow_np': lambda t: t ** np.float64(3), 'rpow': lambda t: 2.0 ** t,
}


@pytest.mark.parametrize('name', list(SCALAR_OPS))
@SETTINGS
@given(shape=small_shapes, seed=seeds)
def test_scalar_ops_grad(name, shape, seed):
    a = rand(shape, seed, 0.5, 2.0)                            # positive: pow and division are defined
    check_grads(SCALAR_OPS[name], a)


def test_rsub_is_not_sub():
    t = Tensor([1., 2., 5.])
    np.testing.assert_array_equal((1 - t).data, [0., -1., -4.])
    np.testing.assert_array_equal((np.float64(1) - t).data, [0., -1., -4.])
    np.testing.assert_array_equal((np.array([1., 1., 1.]) - t).data, [0., -1., -4.])
    np.testing.assert_array_equal((6 / t).data, [6., 3., 1.2])


# ---------------------------------------------------------------- matmul
@SETTINGS
@given(data=st.data(), seed=seeds)
def test_matmul_grad_batched(data, seed):
    n, k, m = (data.draw(st.integers(1, 4)) for _ in range(3))
    batch = data.draw(mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3))
    ba, bb = batch.input_shapes
    check_grads(lambda a, b: a @ b, rand(ba + (n, k), seed), rand(bb + (k, m), seed + 1))


@pytest.mark.parametrize('sa,sb', [((3,), (3, 2)), ((2, 3), (3,)), ((3,), (3,)), ((2, 4, 3), (3,)),
                                   ((3,), (2, 3, 4)), ((1, 2, 3), (4, 3, 2))])
def test_matmul_grad_vectors_and_batches(sa, sb):
    check_grads(lambda a, b: a @ b, rand(sa, 1), rand(sb, 2))


def test_matmul_with_constant_and_numpy_operands():
    w = Tensor(rand((3, 2), 0), requires_grad=True)
    x = rand((4, 3), 1)
    (x @ w).sum().backward()                                   # ndarray @ Tensor uses __rmatmul__
    np.testing.assert_allclose(w.grad, x.T @ np.ones((4, 2)))


@pytest.mark.parametrize('sa,sb', [((2, 3), (4, 5)), ((3,), (4,)), ((2, 2, 3), (3, 3, 2))])
def test_matmul_shape_error_names_both_shapes(sa, sb):
    with pytest.raises(ValueError) as e:
        Tensor(np.ones(sa)) @ Tensor(np.ones(sb))
    assert str(sa) in str(e.value) and str(sb) in str(e.value)


# ---------------------------------------------------------------- reductions
def axis_strategy(ndim):
    if ndim == 0: return st.just(None)
    single = st.integers(-ndim, ndim - 1)
    multi = st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple)
    return st.one_of(st.none(), single, multi)


@pytest.mark.parametrize('name', ['sum', 'mean', 'max', 'logsumexp'])
@SETTINGS
@given(data=st.data(), seed=seeds)
def test_reduction_grad(name, data, seed):
    shape = data.draw(small_shapes)
    axis = data.draw(axis_strategy(len(shape)))
    keepdims = data.draw(st.booleans())
    if name == 'max' and isinstance(axis, tuple): axis = axis[0]
    a = rand(shape, seed)                                      # continuous values: no ties for max
    check_grads(lambda t: getattr(t, name)(axis=axis, keepdims=keepdims), a)
    assert getattr(Tensor(a), name)(axis=axis, keepdims=keepdims).shape == \
        getattr(np, 'amax' if name == 'max' else 'sum' if name == 'logsumexp' else name)(a, axis=axis, keepdims=keepdims).shape


def test_max_ties_split_gradient():
    x = Tensor([[3., 3., 1.]], requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0.5, 0.5, 0.]])


def test_logsumexp_and_log_softmax_are_stable():
    x = Tensor([[1e4, 0.], [-1e4, -1e4]])
    np.testing.assert_allclose(x.logsumexp(axis=1).data, [1e4, -1e4 + np.log(2)])
    assert np.isfinite(x.log_softmax(axis=1).data).all()


@pytest.mark.parametrize('axis', [-1, 0, 1])
@SETTINGS
@given(shape=array_shapes(min_dims=2, max_dims=3, max_side=4), seed=seeds)
def test_log_softmax_grad(axis, shape, seed):
    check_grads(lambda t: t.log_softmax(axis=axis), rand(shape, seed, -5, 5))


# ---------------------------------------------------------------- shapes and indexing
@SETTINGS
@given(shape=small_shapes, seed=seeds)
def test_reshape_transpose_grad(shape, seed):
    a = rand(shape, seed)
    check_grads(lambda t: t.reshape(-1), a)
    check_grads(lambda t: t.reshape(*shape[::-1]) if shape else t.reshape(()), a.reshape(shape[::-1]) if shape else a)
    perm = tuple(np.random.default_rng(seed).permutation(len(shape)))
    check_grads(lambda t: t.permute(*perm) if perm else t.T, a)
    check_grads(lambda t: t.T, a)


@SETTINGS
@given(shapes=mutually_broadcastable_shapes(num_shapes=1, min_dims=0, max_dims=3, max_side=4), seed=seeds)
def test_broadcast_to_grad(shapes, seed):
    (shape,), target = shapes.input_shapes, shapes.result_shape
    check_grads(lambda t: t.broadcast_to(target), rand(shape, seed))


@pytest.mark.parametrize('index', [1, -1, (0, 2), (slice(None), 1), (slice(1, None), slice(None, None, 2)),
                                   np.array([0, 2, 2, 1]), (np.array([0, 0, 1]), np.array([3, 3, 0])),
                                   [1, 1], np.array([True, False, True]), (Ellipsis, None, 0)])
def test_getitem_grad(index):
    check_grads(lambda t: t[index], rand((3, 4), 0))


def test_getitem_repeated_index_accumulates():
    x = Tensor(np.zeros(3), requires_grad=True)
    x[np.array([1, 1, 1, 2])].sum().backward()
    np.testing.assert_array_equal(x.grad, [0., 3., 1.])


# ---------------------------------------------------------------- elementwise functions
UNARY = {
    'exp': (lambda t: t.exp(), (-2, 2)), 'log': (lambda t: t.log(), (0.2, 3)),
    'relu': (lambda t: t.relu(), (0.05, 2)), 'relu_neg': (lambda t: t.relu(), (-2, -0.05)),
    'tanh': (lambda t: t.tanh(), (-3, 3)), 'sigmoid': (lambda t: t.sigmoid(), (-6, 6)),
    'astype32': (lambda t: t.astype(np.float64), (-2, 2)),
}


@pytest.mark.parametrize('name', list(UNARY))
@SETTINGS
@given(shape=small_shapes, seed=seeds)
def test_unary_grad(name, shape, seed):
    f, (lo, hi) = UNARY[name]
    check_grads(f, rand(shape, seed, lo, hi))


def test_relu_sign_mixed():
    x = Tensor([-1., 0.5, 2.], requires_grad=True)
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad, [0., 1., 1.])


def test_sigmoid_extreme_values_no_overflow():
    with np.errstate(over='raise'):
        y = Tensor(np.array([-1000., 0., 1000.], np.float32)).sigmoid()
    np.testing.assert_array_equal(y.data, [0., 0.5, 1.])


def test_composite_graph_with_reuse():
    "A tensor used by several consumers receives the sum of their gradients."
    def f(a, b):
        h = (a @ b).tanh()
        return (h * h + h.sigmoid() - (h / 3).exp()).log_softmax(axis=1)[:, 1:] * a[:, :1]
    check_grads(f, rand((3, 4), 0), rand((4, 5), 1))


# ---------------------------------------------------------------- dtype
FLOAT32_CASES = {
    'scalar_right': lambda t: t * 2.5 + 1 - np.float64(0.5),
    'scalar_left': lambda t: np.float64(2) * t / 3 - 1.0,
    'rsub_rdiv': lambda t: (1 - t) + 2.0 / (t + 3),
    'pow': lambda t: t ** np.float64(2) + t ** 3,
    'rpow': lambda t: 2.0 ** t,
    'unary': lambda t: t.exp().log() + t.tanh() + t.sigmoid() + t.relu(),
    'reductions': lambda t: t.sum(axis=0) + t.mean(axis=0) + t.max(axis=0) + t.logsumexp(axis=0),
    'matmul': lambda t: t @ t.T,
    'shapes': lambda t: t.reshape(-1)[1:].broadcast_to((2, 5)).permute(1, 0),
    'log_softmax': lambda t: t.log_softmax(),
    'mixed_float64_array': lambda t: t * np.ones((2, 3)),
}


@pytest.mark.parametrize('name', list(FLOAT32_CASES))
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_dtype_preserved(name, dtype):
    t = Tensor(np.random.default_rng(0).uniform(0.5, 1.5, (2, 3)).astype(dtype), requires_grad=True)
    y = FLOAT32_CASES[name](t)
    if name != 'mixed_float64_array': assert y.dtype == dtype
    y.sum().backward()
    assert t.grad.dtype == dtype and t.grad.shape == t.shape


def test_backward_seeds_in_output_dtype():
    t = Tensor(np.ones(3, np.float32), requires_grad=True)
    loss = (t * t).sum()
    assert loss.dtype == np.float32
    loss.backward()
    assert t.grad.dtype == np.float32


# ---------------------------------------------------------------- backward semantics
def test_accumulation_across_calls():
    w = Tensor(np.array([1., -2.]), requires_grad=True)
    (w * 3).sum().backward()
    g = w.grad
    (w * w).sum().backward()
    assert w.grad is g                                          # accumulated in place
    np.testing.assert_array_equal(w.grad, [3 + 2, 3 - 4])


def test_first_grad_is_not_aliased():
    "The stored gradient must not alias an array also handed to another leaf."
    a = Tensor(np.zeros(2), requires_grad=True); b = Tensor(np.zeros(2), requires_grad=True)
    (a + b).sum().backward()
    a.grad += 1
    np.testing.assert_array_equal(b.grad, [1., 1.])


def test_backward_non_scalar_needs_grad():
    t = Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"shape \(2, 3\)"):
        (t * 2).backward()
    (t * 2).backward(np.ones((2, 3)))
    np.testing.assert_array_equal(t.grad, np.full((2, 3), 2.))
    with pytest.raises(ValueError, match="expected the tensor's shape"):
        (t * 2).backward(np.ones(3))


def test_backward_on_tensor_without_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).sum().backward()


def test_no_grad_records_nothing():
    w = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        assert not is_grad_enabled()
        y = (w * 2).exp().sum()
    assert is_grad_enabled()
    assert not y.requires_grad and y._ctx is None


def test_no_grad_restores_after_exception():
    with pytest.raises(KeyError):
        with no_grad():
            raise KeyError
    assert is_grad_enabled()


def test_enable_grad_records_inside_no_grad():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    with no_grad():
        with enable_grad():
            assert is_grad_enabled()
            y = (w * w).sum()
        assert not is_grad_enabled()
        z = (w * 3).sum()
    assert is_grad_enabled()
    assert y.requires_grad and y._ctx is not None
    assert not z.requires_grad and z._ctx is None
    y.backward()
    np.testing.assert_array_equal(w.grad, [2.0, 4.0])


def test_enable_grad_reentrant_and_restores_after_exception():
    mode = enable_grad()
    seen = []
    @mode
    def f(n):
        seen.append(is_grad_enabled())
        with no_grad():
            seen.append(is_grad_enabled())
            if n: f(n - 1)
            seen.append(is_grad_enabled())
        seen.append(is_grad_enabled())
    with no_grad():
        f(2)                                  # the same instance entered three times, nested in no_grad
        assert not is_grad_enabled()
        with pytest.raises(KeyError):
            with mode:
                raise KeyError
        assert not is_grad_enabled()
    assert is_grad_enabled()
    assert seen == [True, False] * 3 + [False, True] * 3   # on the way in, then on the way out


def test_ops_on_constants_build_no_graph():
    x = Tensor(np.ones((2, 2)))
    y = (x @ x + 1).relu().sum()
    assert y._ctx is None and not y.requires_grad


def test_detach_cuts_graph_and_shares_data():
    w = Tensor(np.ones(2), requires_grad=True)
    h = w * 2
    d = h.detach()
    assert d.data is h.data and not d.requires_grad and d._ctx is None
    (d * w).sum().backward()
    np.testing.assert_array_equal(w.grad, [2., 2.])


def test_graph_size_constant_over_steps():
    w = Tensor(np.ones(3), requires_grad=True)
    sizes = []
    for _ in range(5):
        loss = ((w * 2 - 1) ** 2).sum()
        sizes.append(count_graph_nodes(loss))
        loss.backward()
        with no_grad():
            w.data -= 0.1 * w.grad
        w.grad = None
    assert len(set(sizes)) == 1
    assert w._ctx is None and w.is_leaf


def test_graph_freed_after_backward():
    w = Tensor(np.ones(1000), requires_grad=True)
    h = (w * 2).exp()
    ref = weakref.ref(h)
    loss = h.sum()
    loss.backward()
    assert loss._ctx is None and h._ctx is None
    del h
    gc.collect()
    assert ref() is None                                     # intermediate no longer reachable from loss
    with pytest.raises(RuntimeError, match="already freed"):
        loss.backward()


def test_retain_graph():
    w = Tensor(np.ones(2), requires_grad=True)
    loss = (w * 3).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_array_equal(w.grad, [6., 6.])


def test_backward_builds_no_graph_for_gradients():
    w = Tensor(np.ones(2), requires_grad=True)
    (w * w).sum().backward()
    assert type(w.grad) is np.ndarray


def test_deep_graph_no_recursion_limit():
    w = Tensor(np.ones(1), requires_grad=True)
    y = w
    for _ in range(5000): y = y + 1
    y.sum().backward()
    np.testing.assert_array_equal(w.grad, [1.])


def test_hash_by_identity_and_no_eq_override():
    a, b = Tensor([1.0]), Tensor([1.0])
    assert a != b and a == a and len({a: 1, b: 2}) == 2
    assert Tensor.__eq__ is object.__eq__


def test_int_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        Tensor(np.arange(3), requires_grad=True)


def test_scalar_exponent_only():
    with pytest.raises(TypeError, match="scalar exponent"):
        Tensor([2.0]) ** Tensor([2.0])


def test_no_grad_decorator_reentrant():
    @no_grad()
    def f(n):
        assert not is_grad_enabled()
        return 0 if n == 0 else f(n - 1)
    f(3)
    assert is_grad_enabled()


def test_zero_dim_parameter_grad_is_ndarray():
    "numpy returns scalars from 0-d arithmetic; .data and .grad must still be ndarrays."
    w = Tensor(np.float32(1.5), requires_grad=True)
    y = (w * w + 2.0 * w).exp().log()
    assert type(y.data) is np.ndarray and y.shape == ()
    y.backward()
    assert type(w.grad) is np.ndarray and w.grad.shape == () and w.grad.dtype == np.float32
    np.testing.assert_allclose(w.grad, 2 * 1.5 + 2)
    y = w * 3
    y.backward()
    assert type(w.grad) is np.ndarray


def test_array_protocol_copies_when_asked():
    t = Tensor(np.arange(3.0))
    assert np.asarray(t) is t.data                      # a view for numpy by default
    snapshot = np.array(t, copy=True)
    t.data += 1
    np.testing.assert_array_equal(snapshot, [0.0, 1.0, 2.0])
    assert np.array(t, dtype=np.float32).dtype == np.float32


def test_power_zero_has_zero_gradient_at_zero():
    x = Tensor(np.array([0.0, 2.0]), requires_grad=True)
    (x ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])


def test_integer_results_do_not_require_grad():
    x = Tensor(np.array([1.5, 2.5]), requires_grad=True)
    y = x.astype(np.int64)
    assert y.dtype == np.int64 and not y.requires_grad
    assert x.astype(np.float32).requires_grad


def test_float_of_a_one_element_tensor():
    assert float(Tensor(np.array([2.5], np.float32))) == 2.5
    with pytest.raises((TypeError, ValueError)): float(Tensor(np.ones(2)))


def test_leaf_gradients_are_c_contiguous():
    # through a transpose (a Linear layer's x @ W.T), the weight's gradient (dy.T @ x).T comes out in Fortran order
    x = Tensor(np.random.default_rng(0).standard_normal((5, 3)), requires_grad=True)
    w = Tensor(np.random.default_rng(1).standard_normal((4, 3)), requires_grad=True)
    (x @ w.T).sum().backward()
    assert w.grad.flags.c_contiguous and x.grad.flags.c_contiguous
    np.testing.assert_allclose(w.grad, np.ones((5, 4)).T @ x.data)

"""minima.nn and minima.init: module registration, state dicts, layers, losses, initialisers."""
import math

import numpy as np
import pytest

from minima import init, nn
from minima.autograd import Tensor
from minima.nn import Parameter


def mlp(seed=0, dtype=np.float32):
    init.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8, dtype=dtype), nn.ReLU(), nn.Linear(8, 3, dtype=dtype))


# ---------------------------------------------------------------- Parameter and Module
def test_parameter_keeps_dtype_and_array():
    for dt in (np.float32, np.float64):
        a = np.ones(3, dt)
        p = Parameter(a)
        assert p.data is a and p.dtype == dt and p.requires_grad
    ro = np.broadcast_to(np.ones(1), (3,))
    assert Parameter(ro).data.flags.writeable


def test_parameters_is_generator_in_definition_order():
    m = mlp()
    gen = m.parameters()
    assert iter(gen) is gen
    names = [n for n, _ in m.named_parameters()]
    assert names == ['0.weight', '0.bias', '2.weight', '2.bias']
    assert [p for p in m.parameters()] == [p for _, p in m.named_parameters()]


def test_nested_names_and_children():
    class Net(nn.Module):
        def __init__(self):
            self.layers = nn.Sequential(nn.Linear(2, 3), nn.Tanh())
            self.head = nn.Linear(3, 1)
        def forward(self, x): return self.head(self.layers(x))
    net = Net()
    assert [n for n, _ in net.named_parameters()] == ['layers.0.weight', 'layers.0.bias', 'head.weight', 'head.bias']
    assert list(net.children()) == [net.layers, net.head]
    assert len(list(net.modules())) == 5
    assert net(Tensor(np.ones((4, 2), np.float32))).shape == (4, 1)


def test_shared_layer_counted_once():
    lin = nn.Linear(3, 3)
    m = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(m.parameters())) == 2
    assert len(list(m.modules())) == 3


def test_train_eval_recursive():
    m = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(0.5)))
    assert m.eval() is m
    assert all(not sub.training for sub in m.modules())
    m.train()
    assert all(sub.training for sub in m.modules())


def test_zero_grad():
    m = mlp()
    m(Tensor(np.ones((2, 4), np.float32))).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_sequential_indexing():
    m = mlp()
    assert len(m) == 3 and isinstance(m[1], nn.ReLU) and len(m[:2]) == 2


# ---------------------------------------------------------------- state dict
def test_state_dict_copies():
    m = mlp()
    sd = m.state_dict()
    sd['0.weight'][:] = 0
    assert not (m[0].weight.data == 0).all()


def test_load_state_dict_in_place_round_trip():
    a, b = mlp(0), mlp(1)
    arrays = [p.data for p in b.parameters()]
    b.load_state_dict(a.state_dict())
    for arr, p, q in zip(arrays, b.parameters(), a.parameters()):
        assert p.data is arr
        np.testing.assert_array_equal(p.data, q.data)


@pytest.mark.parametrize('edit,match', [
    (lambda sd: sd.pop('2.bias'), 'missing'),
    (lambda sd: sd.__setitem__('extra', np.zeros(1)), 'unexpected'),
    (lambda sd: sd.__setitem__('2.bias', np.zeros(4, np.float32)), r'2.bias: shape \(4,\)'),
    (lambda sd: sd.__setitem__('2.bias', np.zeros(3, np.float64)), '2.bias: dtype float64'),
])
def test_load_state_dict_validates_before_changing_anything(edit, match):
    m, other = mlp(0), mlp(1)
    before = [p.data.copy() for p in m.parameters()]
    sd = other.state_dict()
    edit(sd)
    with pytest.raises(ValueError, match=match):
        m.load_state_dict(sd)
    for p, b in zip(m.parameters(), before):
        np.testing.assert_array_equal(p.data, b)


@pytest.mark.parametrize('bad', [[1], None, 'weights', [('0.weight', np.zeros((8, 4), np.float32))]],
                         ids=['list', 'None', 'str', 'pairs'])
def test_load_state_dict_of_a_non_dict_is_a_type_error(bad):
    m = mlp(0)
    before = [(p.data, p.data.copy()) for p in m.parameters()]
    with pytest.raises(TypeError, match=r'state_dict must be a dict of name -> array') as e:
        m.load_state_dict(bad)
    assert type(bad).__name__ in str(e.value)
    for p, (arr, copy) in zip(m.parameters(), before):
        assert p.data is arr
        np.testing.assert_array_equal(p.data, copy)


def test_load_state_dict_keyword_is_state_dict():
    a, b = mlp(0), mlp(1)
    b.load_state_dict(state_dict=a.state_dict())
    np.testing.assert_array_equal(b[0].weight.data, a[0].weight.data)


def test_load_state_dict_non_strict():
    m, other = mlp(0), mlp(1)
    sd = other.state_dict(); sd.pop('0.weight'); sd['x'] = np.zeros(1)
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert missing == ['0.weight'] and unexpected == ['x']
    np.testing.assert_array_equal(m[2].bias.data, other[2].bias.data)


# ---------------------------------------------------------------- Linear
def test_linear_shapes_init_and_dtype():
    init.manual_seed(0)
    lin = nn.Linear(64, 10)
    assert lin.weight.shape == (10, 64) and lin.bias.shape == (10,)
    assert lin.weight.dtype == lin.bias.dtype == np.float32
    bound = 1 / math.sqrt(64)
    assert np.abs(lin.weight.data).max() <= bound and np.abs(lin.bias.data).max() <= bound
    assert np.abs(lin.weight.data).max() > 0.9 * bound                 # really uses the whole range
    assert nn.Linear(3, 2, dtype=np.float64).weight.dtype == np.float64
    assert nn.Linear(3, 2, bias=False).bias is None
    assert len(list(nn.Linear(3, 2, bias=False).parameters())) == 1


def test_linear_reproducible_from_seed_or_generator():
    init.manual_seed(3); a = nn.Linear(5, 4)
    init.manual_seed(3); b = nn.Linear(5, 4)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    c = nn.Linear(5, 4, generator=np.random.default_rng(7))
    d = nn.Linear(5, 4, generator=np.random.default_rng(7))
    np.testing.assert_array_equal(c.bias.data, d.bias.data)


def test_linear_forward_matches_numpy():
    lin = nn.Linear(3, 2, dtype=np.float64)
    x = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_allclose(lin(Tensor(x)).data, x @ lin.weight.data.T + lin.bias.data)


def test_linear_wrong_input_size():
    with pytest.raises(ValueError, match=r"last axis is 3, got shape \(2, 4\)"):
        nn.Linear(3, 2)(Tensor(np.ones((2, 4), np.float32)))


# ---------------------------------------------------------------- layers
def test_activations():
    x = Tensor(np.array([-1., 0., 2.]))
    np.testing.assert_array_equal(nn.ReLU()(x).data, [0., 0., 2.])
    np.testing.assert_allclose(nn.Tanh()(x).data, np.tanh(x.data))
    np.testing.assert_allclose(nn.Sigmoid()(x).data, 1 / (1 + np.exp(-x.data)))
    assert nn.Identity()(x) is x


def test_flatten():
    x = Tensor(np.zeros((2, 3, 4, 5)))
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(1, 2)(x).shape == (2, 12, 5)


def test_dropout():
    x = Tensor(np.ones((200, 500), np.float32), requires_grad=True)
    d = nn.Dropout(0.3, generator=np.random.default_rng(0))
    y = d(x)
    kept = y.data != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y.data[kept], 1 / 0.7, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, y.data)             # gradient uses the same mask
    assert d.eval()(x) is x
    assert nn.Dropout(0.0)(x) is x
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        nn.Dropout(1.5)


def test_dropout_seeded_by_manual_seed():
    d = nn.Dropout(0.5)
    x = Tensor(np.ones(50))
    init.manual_seed(1); a = d(x).data
    init.manual_seed(1); b = d(x).data
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- losses
def test_cross_entropy_value_and_grad_by_hand():
    z = np.array([[1., 2., 3.], [1., 1., 1.]])
    y = np.array([2, 0])
    logits = Tensor(z, requires_grad=True)
    loss = nn.CrossEntropyLoss()(logits, y)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    np.testing.assert_allclose(loss.item(), -np.log(p[[0, 1], y]).mean(), rtol=1e-14)
    loss.backward()
    np.testing.assert_allclose(logits.grad, (p - np.eye(3)[y]) / 2, rtol=1e-13)
    s = nn.CrossEntropyLoss(reduction='sum')(Tensor(z), y).item()
    np.testing.assert_allclose(s, 2 * loss.item())
    assert nn.CrossEntropyLoss(reduction='none')(Tensor(z), y).shape == (2,)


def test_cross_entropy_stable_and_float32():
    z = Tensor(np.array([[1000., -1000.], [-1000., 1000.]], np.float32), requires_grad=True)
    loss = nn.CrossEntropyLoss()(z, np.array([0, 0]))
    assert np.isfinite(loss.item()) and loss.dtype == np.float32
    np.testing.assert_allclose(loss.item(), 1000.0)
    loss.backward()
    assert z.grad.dtype == np.float32 and np.isfinite(z.grad).all()


def test_cross_entropy_accepts_tensor_labels():
    z = Tensor(np.zeros((2, 3)))
    assert np.isclose(nn.CrossEntropyLoss()(z, Tensor(np.array([0, 2]))).item(), np.log(3))


@pytest.mark.parametrize('logits,labels,err,match', [
    (np.zeros((2, 3)), np.array([0., 1.]), RuntimeError, 'integer class labels, got dtype float64'),     # torch: RuntimeError
    (np.zeros((2, 3)), np.array([0, 3]), IndexError, r'Target 3 is out of bounds.*in \[0, 3\).*from 0 to 3'),   # torch: IndexError
    (np.zeros((2, 3)), np.array([-1, 0]), IndexError, r'in \[0, 3\)'),
    (np.zeros((2, 3)), np.array([[0, 1]]), ValueError, r'labels of shape \(2,\).*got \(1, 2\)'),
    (np.zeros((2, 3)), np.array([0, 1, 2]), ValueError, r'labels of shape \(2,\)'),
    (np.zeros(3), np.array([0]), ValueError, r'labels of shape \(\) for scores of shape \(3,\)'),  # unbatched: a 0-d label
])
def test_cross_entropy_bad_input(logits, labels, err, match):
    with pytest.raises(err, match=match):
        nn.CrossEntropyLoss()(Tensor(logits), labels)


def test_bad_reduction():
    with pytest.raises(ValueError, match="reduction"):
        nn.CrossEntropyLoss(reduction='avg')


def test_mse():
    pred = Tensor(np.array([[1., 2.], [3., 4.]]), requires_grad=True)
    target = np.array([[0., 2.], [5., 4.]])
    loss = nn.MSELoss()(pred, target)
    assert loss.item() == pytest.approx((1 + 4) / 4)
    loss.backward()
    np.testing.assert_allclose(pred.grad, 2 * (pred.data - target) / 4)
    assert nn.MSELoss(reduction='sum')(Tensor(pred.data), target).item() == pytest.approx(5)
    with pytest.raises(ValueError, match=r"same shape, got \(2, 2\) and \(4,\)"):
        nn.MSELoss()(pred, np.zeros(4))


# ---------------------------------------------------------------- init
def test_init_shapes_dtypes_and_flags():
    for f in (init.zeros, init.ones, init.rand, init.randn, init.uniform, init.normal,
              init.xavier_uniform, init.xavier_normal, init.kaiming_uniform, init.kaiming_normal):
        t = f(3, 4)
        assert t.shape == (3, 4) and t.dtype == np.float32 and not t.requires_grad
        t = f((3, 4), dtype=np.float64, requires_grad=True)
        assert t.shape == (3, 4) and t.dtype == np.float64 and t.requires_grad
    np.testing.assert_array_equal(init.constant(2, 2, c=3.0).data, np.full((2, 2), 3.0))


@pytest.mark.parametrize('f', [init.rand, init.randn, init.uniform, init.normal, init.xavier_uniform,
                               init.xavier_normal, init.kaiming_uniform, init.kaiming_normal])
def test_init_reproducible(f):
    init.manual_seed(11); a = f(5, 6).data
    init.manual_seed(11); b = f(5, 6).data
    c = f(5, 6, generator=np.random.default_rng(11)).data
    np.testing.assert_array_equal(a, b); np.testing.assert_array_equal(a, c)


def test_init_statistics_match_formulas():
    g = np.random.default_rng(0)
    n_out, n_in = 400, 300
    assert np.std(init.xavier_normal(n_out, n_in, generator=g).data) == pytest.approx(math.sqrt(2 / 700), rel=0.02)
    assert np.abs(init.xavier_uniform(n_out, n_in, generator=g).data).max() <= math.sqrt(6 / 700)
    assert np.std(init.kaiming_normal(n_out, n_in, nonlinearity='relu', generator=g).data) == \
        pytest.approx(math.sqrt(2 / n_in), rel=0.02)
    assert np.std(init.kaiming_normal(n_out, n_in, mode='fan_out', nonlinearity='relu', generator=g).data) == \
        pytest.approx(math.sqrt(2 / n_out), rel=0.02)
    b = math.sqrt(3) * init.calculate_gain('tanh') / math.sqrt(n_in)
    w = init.kaiming_uniform(n_out, n_in, nonlinearity='tanh', generator=g).data
    assert np.abs(w).max() <= b and np.abs(w).max() > 0.99 * b


def test_init_errors():
    with pytest.raises(ValueError, match="at least 2 axes"):
        init.xavier_uniform(5)
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_uniform(2, 2, mode='fan')
    with pytest.raises(ValueError, match="unknown nonlinearity"):
        init.calculate_gain('gelu')


def test_gains_match_torch():
    torch = pytest.importorskip('torch')
    for nl, param in [('linear', None), ('sigmoid', None), ('tanh', None), ('relu', None),
                      ('leaky_relu', None), ('leaky_relu', math.sqrt(5))]:
        assert init.calculate_gain(nl, param) == pytest.approx(torch.nn.init.calculate_gain(nl, param))


def test_sequential_refuses_layers_that_are_not_modules():
    with pytest.raises(TypeError, match="layer 1 is function"):
        nn.Sequential(nn.Linear(2, 2), lambda t: t * 0)

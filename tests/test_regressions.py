"""One regression test per bug of the seed minima code (see the sources page) that concerns
autograd, nn or data. Each test is named after the bug it guards against."""
import numpy as np

from minima import init, nn
from minima.autograd import Tensor, no_grad
from graph_nodes import count_graph_nodes
from minima.nn import Parameter


def sgd_step(params, lr):
    "Plain SGD written against the optimizer contract: read p.grad, write p.data in place."
    for p in params:
        p.data -= np.asarray(lr, p.dtype) * p.grad
        p.grad = None


def test_bug2_float32_parameters_get_float32_grads():
    "#2: backward() seeded float64, so float32 parameters got float64 gradients."
    init.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))
    x = Tensor(np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32))
    loss = nn.CrossEntropyLoss()(model(x), np.array([0, 1, 2, 0, 1, 2]))
    assert loss.dtype == np.float32
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad.dtype == np.float32, name
    # the scalar cases that numpy 2 would promote
    w = Parameter(np.ones(3, np.float32))
    (w * np.float64(2.0) + 1.5 - np.float64(3) / (w + 1)).sum().backward()
    assert w.grad.dtype == np.float32


def test_bug4_no_graph_growth_from_detached_use():
    "#4: state built from non-detached tensors made every step grow the autograd graph."
    init.manual_seed(0)
    model = nn.Linear(3, 2)
    x, y = Tensor(np.ones((4, 3), np.float32)), np.array([0, 1, 0, 1])
    velocity = {p: np.zeros_like(p.data) for p in model.parameters()}
    running = {p: p.detach() for p in model.parameters()}          # state kept from detached tensors
    sizes = []
    for _ in range(6):
        loss = nn.CrossEntropyLoss()(model(x), y)
        sizes.append(count_graph_nodes(loss))
        loss.backward()
        with no_grad():
            for p in model.parameters():
                velocity[p] = 0.9 * velocity[p] + p.grad
                running[p] = running[p] * 0.5 + p * 0.5           # tensor arithmetic, no graph
                p.data -= 0.1 * velocity[p]
                p.grad = None
    assert len(set(sizes)) == 1
    for p in model.parameters():
        assert p.is_leaf and p._ctx is None
        assert running[p]._ctx is None and not running[p].requires_grad
    h = model.weight.detach() * 2                                  # outside no_grad, detached: no graph
    assert h._ctx is None and not h.requires_grad


def test_bug5_linear_bias_is_parameter_and_trains():
    "#5: Linear.bias was an op result, not a Parameter, so it was never trained."
    init.manual_seed(0)
    lin = nn.Linear(2, 1)
    assert isinstance(lin.bias, Parameter) and lin.bias.is_leaf
    assert any(p is lin.bias for p in lin.parameters())
    # a target that only the bias can fit: zero inputs, constant output 3
    x, y = Tensor(np.zeros((8, 2), np.float32)), np.full((8, 1), 3.0, np.float32)
    for _ in range(200):
        loss = nn.MSELoss()(lin(x), y)
        loss.backward()
        sgd_step(lin.parameters(), 0.1)
    np.testing.assert_allclose(lin.bias.data, [3.0], atol=1e-4)


def test_bug6_sequential_parameters_once_each():
    "#6: Sequential.parameters() returned every parameter twice (each updated twice per step)."
    init.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 2)))
    params = list(model.parameters())
    assert len(params) == 4 and len({id(p) for p in params}) == 4
    # one step of SGD moves each parameter by exactly -lr * grad
    x = Tensor(np.ones((2, 3), np.float32))
    model(x).sum().backward()
    before = {id(p): (p.data.copy(), p.grad.copy()) for p in params}
    sgd_step(model.parameters(), 0.5)
    for p in params:
        b, g = before[id(p)]
        np.testing.assert_allclose(p.data, b - np.float32(0.5) * g, rtol=1e-6)


def test_bug7_rsub_and_broadcasting():
    "#7: 1 - t computed t - 1 (__rsub__ = __sub__), and binary ops refused broadcasting."
    t = Tensor(np.array([0.25, 2.0]), requires_grad=True)
    np.testing.assert_array_equal((1 - t).data, [0.75, -1.0])
    (1 - t).sum().backward()
    np.testing.assert_array_equal(t.grad, [-1., -1.])
    a = Tensor(np.ones((3, 1)), requires_grad=True)
    b = Tensor(np.arange(4.), requires_grad=True)
    c = a * b - b / 2 + 1
    assert c.shape == (3, 4)
    c.sum().backward()
    np.testing.assert_array_equal(a.grad, np.full((3, 1), 6.))
    np.testing.assert_array_equal(b.grad, np.full(4, 3 - 1.5))

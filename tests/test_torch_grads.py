"""Gradients of a small MLP + CrossEntropyLoss agree with PyTorch for the same weights and batch
(float64, relative error <= 1e-10)."""
import numpy as np
import pytest

from minima import nn
from minima.autograd import Tensor

torch = pytest.importorskip('torch')


def rel_err(a, b):
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)


def build_pair(sizes, act, seed):
    rng = np.random.default_rng(seed)
    mi_layers, th_layers = [], []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = nn.Linear(n_in, n_out, dtype=np.float64, generator=rng)
        tl = torch.nn.Linear(n_in, n_out, dtype=torch.float64)
        with torch.no_grad():
            tl.weight.copy_(torch.from_numpy(lin.weight.data))
            tl.bias.copy_(torch.from_numpy(lin.bias.data))
        mi_layers.append(lin); th_layers.append(tl)
        if i < len(sizes) - 2:
            mi_layers.append({'relu': nn.ReLU, 'tanh': nn.Tanh, 'sigmoid': nn.Sigmoid}[act]())
            th_layers.append({'relu': torch.nn.ReLU, 'tanh': torch.nn.Tanh, 'sigmoid': torch.nn.Sigmoid}[act]())
    return nn.Sequential(*mi_layers), torch.nn.Sequential(*th_layers)


@pytest.mark.parametrize('act', ['relu', 'tanh', 'sigmoid'])
@pytest.mark.parametrize('reduction', ['mean', 'sum'])
@pytest.mark.parametrize('seed', [0, 1])
def test_mlp_cross_entropy_grads_match_torch(act, reduction, seed):
    sizes = (64, 32, 16, 10)
    mi_model, th_model = build_pair(sizes, act, seed)
    rng = np.random.default_rng(100 + seed)
    x = rng.normal(size=(37, sizes[0])) * 2
    y = rng.integers(0, sizes[-1], 37)

    loss = nn.CrossEntropyLoss(reduction=reduction)(mi_model(Tensor(x)), y)
    loss.backward()
    th_loss = torch.nn.CrossEntropyLoss(reduction=reduction)(th_model(torch.from_numpy(x)), torch.from_numpy(y))
    th_loss.backward()

    assert rel_err(np.array(loss.item()), np.array(th_loss.item())) <= 1e-12
    names = [n for n, _ in mi_model.named_parameters()]
    assert names == [n for n, _ in th_model.named_parameters()]
    for (name, p), (_, q) in zip(mi_model.named_parameters(), th_model.named_parameters()):
        assert p.grad.dtype == np.float64
        assert rel_err(p.grad, q.grad.numpy()) <= 1e-10, name


def test_input_gradient_and_mse_match_torch():
    mi_model, th_model = build_pair((5, 7, 3), 'tanh', 3)
    rng = np.random.default_rng(4)
    x, target = rng.normal(size=(6, 5)), rng.normal(size=(6, 3))
    xt = Tensor(x, requires_grad=True)
    nn.MSELoss()(mi_model(xt), target).backward()
    xth = torch.from_numpy(x.copy()).requires_grad_()
    torch.nn.MSELoss()(th_model(xth), torch.from_numpy(target)).backward()
    assert rel_err(xt.grad, xth.grad.numpy()) <= 1e-10
    for p, q in zip(mi_model.parameters(), th_model.parameters()):
        assert rel_err(p.grad, q.grad.numpy()) <= 1e-10


def test_linear_init_distribution_matches_torch_bounds():
    "Linear's default init uses the same bounds as torch.nn.Linear: U(-1/sqrt(in), 1/sqrt(in))."
    torch.manual_seed(0)
    t = torch.nn.Linear(50, 400)
    m = nn.Linear(50, 400, generator=np.random.default_rng(0))
    for a, b in ((m.weight.data, t.weight.detach().numpy()), (m.bias.data, t.bias.detach().numpy())):
        assert np.abs(a).max() <= 1 / np.sqrt(50) and np.abs(b).max() <= 1 / np.sqrt(50)
        assert abs(a.std() - b.std()) < 0.1 * b.std()

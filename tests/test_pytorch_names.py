"""The PyTorch names a newcomer reaches for: top-level creators, Tensor.size()/dim()/numel()/item(),
nn.functional, nn.utils clipping, torch.load's keywords, help() texts and AttributeError hints."""
import inspect
import importlib
import pydoc

import numpy as np
import pytest

import minima
from minima import nn
from minima.autograd import Tensor
import minima.nn.functional as F
from minima.nn.utils import clip_grad_norm_, clip_grad_value_, NonFiniteGradientError

torch = pytest.importorskip('torch')


@pytest.mark.parametrize('name', ['zeros', 'ones', 'rand', 'randn'])
def test_creators_take_torch_keywords(name):
    make = getattr(minima, name)
    for shape in [(2, 3), ((2, 3),)]:
        t = make(*shape)
        assert t.size() == (2, 3) and t.dtype == np.float32 and not t.requires_grad    # torch's default dtype
    t = make(4, dtype=np.float64, requires_grad=True, device='cpu')
    assert t.dtype == np.float64 and t.requires_grad and t.is_leaf
    with pytest.raises(RuntimeError, match="device='cuda'"): make(2, device='cuda')


def test_tensor_and_arange_follow_torch_dtype_rules():
    for data in ([1.5, 2.0], [1, 2], [True, False], 3.0, [[1, 2], [3, 4]]):
        assert minima.tensor(data).dtype == np.dtype(str(torch.tensor(data).dtype).replace('torch.', ''))
        np.testing.assert_array_equal(minima.tensor(data).data, torch.tensor(data).numpy())
    for args in [(5,), (1, 7, 2), (0, 1, 0.25), (2.0, 5)]:
        np.testing.assert_array_equal(minima.arange(*args).data, torch.arange(*args).numpy())
        assert minima.arange(*args).dtype == np.dtype(str(torch.arange(*args).dtype).replace('torch.', ''))
    src = np.ones(3)
    t = minima.tensor(src, requires_grad=True)
    assert t.data is not src and t.requires_grad and t.dtype == np.float64
    with pytest.raises(TypeError, match='floating-point'): minima.tensor([1, 2], requires_grad=True)


def test_size_dim_numel_item():
    x = minima.randn(2, 3, 4)
    assert x.size() == (2, 3, 4) == x.shape and x.size(1) == 3 and x.size(-1) == 4
    assert x.dim() == 3 == x.ndim and x.numel() == 24
    assert minima.tensor([2.5]).item() == 2.5
    with pytest.raises(IndexError, match=r'range of \[-3, 2\], but got 3'): x.size(3)


def test_functional_names():
    for name in ['relu', 'gelu', 'softmax', 'log_softmax', 'cross_entropy', 'mse_loss', 'linear', 'dropout',
                 'conv2d', 'max_pool2d', 'avg_pool2d', 'batch_norm', 'layer_norm', 'embedding', 'scaled_dot_product_attention']:
        assert callable(getattr(F, name)) and getattr(F, name).__doc__
    x = Tensor(np.ones((100, 100)))
    assert F.dropout(x, 0.5, training=False) is x
    y = F.dropout(x, 0.5)
    assert set(np.unique(y.data)) <= {0.0, 2.0}


def test_clip_grad_norm_like_torch():
    rng = np.random.default_rng(0)
    shapes = [(4, 3), (3,), ()]
    ours = [nn.Parameter(np.zeros(s)) for s in shapes]
    theirs = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    for p, t in zip(ours, theirs):
        p.grad = np.asarray(rng.normal(size=p.shape) * 3)
        t.grad = torch.from_numpy(p.grad.copy())
    for norm_type in (2.0, 1.0, float('inf'), 'inf'):
        arrays = [p.grad for p in ours]
        n_ours = clip_grad_norm_(ours, 0.5, norm_type=norm_type, foreach=True)
        n_torch = torch.nn.utils.clip_grad_norm_(theirs, 0.5, norm_type=norm_type, foreach=True)
        assert abs(n_ours.item() - n_torch.item()) <= 1e-12 * n_torch.item() and n_ours.dtype == np.float64
        assert all(p.grad is a for p, a in zip(ours, arrays))                     # in place
        for p, t in zip(ours, theirs): np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-12)
    assert float(clip_grad_norm_([nn.Parameter(np.zeros(2))], 1.0)) == 0.0     # no gradients
    clip_grad_value_(ours, 0.01); torch.nn.utils.clip_grad_value_(theirs, 0.01)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-12)    # the unclipped entries carry the ulps of the steps above
        assert np.abs(p.grad).max() <= 0.01


def test_clip_grad_norm_nonfinite_and_bad_arguments():
    p = nn.Parameter(np.zeros(2)); p.grad = np.array([np.inf, 1.0])
    with pytest.raises(NonFiniteGradientError, match='non-finite') as e: clip_grad_norm_(p, 1.0, error_if_nonfinite=True)
    assert isinstance(e.value, RuntimeError)                                   # the kind torch raises
    np.testing.assert_array_equal(p.grad, [np.inf, 1.0])                       # unchanged
    p.grad = np.ones(2)
    with pytest.raises(ValueError, match=r'max_norm=-1.0'): clip_grad_norm_(p, -1.0)
    with pytest.raises(ValueError, match='norm_type'): clip_grad_norm_(p, 1.0, norm_type=0)
    with pytest.raises(TypeError, match='max_norm'): clip_grad_norm_(p, '1')
    with pytest.raises(TypeError, match='foreach'): clip_grad_norm_(p, 1.0, foreach='yes')
    with pytest.raises(ValueError, match='clip_value'): clip_grad_value_(p, -1)
    np.testing.assert_array_equal(p.grad, [1.0, 1.0])


def test_load_takes_torch_keywords(tmp_path):
    m = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    minima.save(m, tmp_path / 'm.ckpt')
    for kw in [dict(map_location='cpu'), dict(map_location=None, weights_only=True), dict(weights_only=False),
               dict(map_location=torch.device('cpu')), dict(map_location={'cuda:0': 'cpu'}), dict(mmap=False)]:
        sd = minima.load(tmp_path / 'm.ckpt', **kw)
        assert set(sd) == set(m.state_dict())
    for kw, kind, words in [(dict(map_location='cuda'), RuntimeError, 'CPU memory'), (dict(map_location=lambda s, l: s), RuntimeError, 'map_location'),
                            (dict(map_location={'cpu': 'cuda:1'}), RuntimeError, 'map_location'), (dict(pickle_module=pytest), ValueError, 'no pickle'),
                            (dict(mmap=True), ValueError, 'mmap'), (dict(encoding='latin1'), TypeError, 'encoding'),
                            (dict(weights_only='yes'), TypeError, 'weights_only')]:
        with pytest.raises(kind, match=words): minima.load(tmp_path / 'm.ckpt', **kw)


MY_MODULES = ['minima.autograd', 'minima.init', 'minima.nn.modules', 'minima.nn.layers', 'minima.nn.utils', 'minima.checkpoint']


def public_classes(modules):
    for m in modules:
        mod = importlib.import_module(m)
        for n in mod.__all__:
            o = getattr(mod, n)
            if inspect.isclass(o) and o.__module__ == m: yield f"{m}.{n}", o


@pytest.mark.parametrize('qualname,cls', list(public_classes(MY_MODULES)), ids=lambda v: v if isinstance(v, str) else '')
def test_help_describes_every_public_class(qualname, cls):
    assert cls.__doc__ and cls.__doc__.strip(), qualname
    text = pydoc.render_doc(cls)
    assert cls.__doc__.strip().split('\n')[0] in text
    if '__init__' in cls.__dict__ or not issubclass(cls, BaseException):    # exceptions inherit BaseException's text
        assert 'Initialize self' not in text, qualname


def test_attribute_errors_name_the_attribute_and_hint():
    t = minima.randn(2)
    cases = [(lambda: t.view(2), "'Tensor' object has no attribute 'view'; use .reshape"),
             (lambda: t.cuda(), "no attribute 'cuda'; minima computes with numpy on the CPU"),
             (lambda: t.add_(1), "no attribute 'add_'; minima has no in-place tensor methods"),
             (lambda: t.reshap(2), "did you mean 'reshape'"),
             (lambda: nn.Linear(2, 2).wieght, "'Linear' object has no attribute 'wieght'; did you mean 'weight'"),
             (lambda: nn.Linear(2, 2).cuda(), "'Linear' object has no attribute 'cuda'; minima computes with numpy on the CPU"),
             (lambda: nn.ReLU().register_forward_hook, "no hooks")]
    for call, words in cases:
        with pytest.raises(AttributeError) as e: call()
        assert words in str(e.value), str(e.value)
    assert not hasattr(t, 'device') and hasattr(t, 'size')

"""minima.data: datasets, the DataLoader, the bundled digits, and IDX/MNIST reading."""
import gzip

import numpy as np
import pytest

from minima import init
from minima.autograd import Tensor
from minima.data import DataLoader, Dataset, TensorDataset, load_digits, load_mnist, read_idx, write_idx


def make_ds(n=10):
    return TensorDataset(np.arange(2 * n, dtype=np.float32).reshape(n, 2), np.arange(n))


def labels_of(dl):
    return np.concatenate([yb.data for _, yb in dl])


def test_tensor_dataset():
    ds = make_ds(4)
    assert len(ds) == 4
    x, y = ds[2]
    np.testing.assert_array_equal(x, [4., 5.]); assert y == 2
    assert TensorDataset(Tensor(np.ones(3))).arrays[0].shape == (3,)
    with pytest.raises(ValueError, match=r"lengths \[3, 2\]"):
        TensorDataset(np.ones(3), np.ones(2))


def test_batches_are_tensors_covering_dataset_in_order():
    dl = DataLoader(make_ds(10), batch_size=4)
    batches = list(dl)
    assert len(dl) == len(batches) == 3
    assert all(isinstance(t, Tensor) and not t.requires_grad for b in batches for t in b)
    assert [b[0].shape for b in batches] == [(4, 2), (4, 2), (2, 2)]
    np.testing.assert_array_equal(labels_of(dl), np.arange(10))
    assert batches[0][0].dtype == np.float32


def test_batches_do_not_alias_dataset():
    ds = make_ds(4)
    xb, _ = next(iter(DataLoader(ds, batch_size=4)))
    xb.data[:] = -1
    assert ds.arrays[0].min() >= 0


def test_drop_last():
    dl = DataLoader(make_ds(10), batch_size=4, drop_last=True)
    assert len(dl) == 2 and [len(y) for _, y in dl] == [4, 4]
    assert len(DataLoader(make_ds(8), batch_size=4, drop_last=True)) == 2


def test_shuffle_seed_reproducible_and_each_example_once():
    a = DataLoader(make_ds(50), batch_size=7, shuffle=True, seed=3)
    b = DataLoader(make_ds(50), batch_size=7, shuffle=True, seed=3)
    ea1, ea2 = labels_of(a), labels_of(a)
    np.testing.assert_array_equal(ea1, labels_of(b)); np.testing.assert_array_equal(ea2, labels_of(b))
    assert not np.array_equal(ea1, ea2)                              # a new order every epoch
    assert sorted(ea1) == list(range(50))
    assert not np.array_equal(ea1, np.arange(50))


def test_shuffle_generator_and_global_seed():
    l1 = labels_of(DataLoader(make_ds(30), 5, shuffle=True, generator=np.random.default_rng(1)))
    l2 = labels_of(DataLoader(make_ds(30), 5, shuffle=True, generator=np.random.default_rng(1)))
    np.testing.assert_array_equal(l1, l2)
    init.manual_seed(4); g1 = labels_of(DataLoader(make_ds(30), 5, shuffle=True))
    init.manual_seed(4); g2 = labels_of(DataLoader(make_ds(30), 5, shuffle=True))
    np.testing.assert_array_equal(g1, g2)


def test_generic_dataset_is_stacked():
    class Pairs(Dataset):
        def __len__(self): return 3
        def __getitem__(self, i): return np.full(2, i, np.float32), i
    xb, yb = list(DataLoader(Pairs(), batch_size=2))[1]
    np.testing.assert_array_equal(xb.data, [[2., 2.]]); np.testing.assert_array_equal(yb.data, [2])


@pytest.mark.parametrize('bs', [0, -1, 1.5])
def test_bad_batch_size(bs):
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(make_ds(), batch_size=bs)


def test_load_digits_split():
    pytest.importorskip('sklearn')
    train, test = load_digits()
    (Xtr, ytr), (Xte, yte) = train.arrays, test.arrays
    assert len(train) + len(test) == 1797 and len(test) == round(0.2 * 1797)
    assert Xtr.shape[1] == 64 and Xtr.dtype == np.float32 and ytr.dtype == np.int64
    assert 0 <= Xtr.min() and Xtr.max() <= 1 and set(np.unique(ytr)) == set(range(10))
    tr2, te2 = load_digits()
    np.testing.assert_array_equal(te2.arrays[0], Xte)
    _, te3 = load_digits(seed=1)
    assert not np.array_equal(te3.arrays[1], yte)
    # train and test are disjoint: no test image also appears in train (the dataset has few duplicates)
    rows = {r.tobytes() for r in Xtr}
    assert sum(r.tobytes() in rows for r in Xte) < 5
    assert load_digits(test_size=0.5, dtype=np.float64)[0].arrays[0].dtype == np.float64


@pytest.mark.parametrize('dtype', [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize('gz', [True, False])
def test_idx_round_trip(tmp_path, dtype, gz):
    arr = (np.random.default_rng(0).normal(size=(3, 4, 5)) * 50).astype(dtype)
    path = tmp_path / ('a.idx.gz' if gz else 'a.idx')
    write_idx(path, arr)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, arr)


def test_idx_hand_written_bytes(tmp_path):
    raw = bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(6))
    (tmp_path / 'x.gz').write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(read_idx(tmp_path / 'x.gz'), [[0, 1, 2], [3, 4, 5]])
    raw = bytes([0, 0, 0x0C, 1, 0, 0, 0, 2]) + np.array([1, -2], '>i4').tobytes()
    (tmp_path / 'y.idx').write_bytes(raw)
    np.testing.assert_array_equal(read_idx(tmp_path / 'y.idx'), [1, -2])


def test_idx_bad_files(tmp_path):
    (tmp_path / 'bad').write_bytes(b'PK\x03\x04')
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / 'bad')
    (tmp_path / 'short').write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        read_idx(tmp_path / 'short')


def write_mnist(root, n_train=6, n_test=4, gz=True):
    rng = np.random.default_rng(0)
    data = {}
    for split, n in (('train', n_train), ('t10k', n_test)):
        imgs = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labs = rng.integers(0, 10, n, dtype=np.uint8)
        ext = '.gz' if gz else ''
        write_idx(root / f'{split}-images-idx3-ubyte{ext}', imgs)
        write_idx(root / f'{split}-labels-idx1-ubyte{ext}', labs)
        data[split] = imgs, labs
    return data


@pytest.mark.parametrize('gz', [True, False])
def test_load_mnist(tmp_path, gz):
    data = write_mnist(tmp_path, gz=gz)
    train, test = load_mnist(tmp_path)
    (Xtr, ytr), (Xte, yte) = train.arrays, test.arrays
    assert Xtr.shape == (6, 784) and Xtr.dtype == np.float32 and ytr.dtype == np.int64
    np.testing.assert_allclose(Xtr * 255, data['train'][0].reshape(6, -1), atol=1e-3)
    np.testing.assert_array_equal(yte, data['t10k'][1])
    assert load_mnist(tmp_path, flatten=False)[1].arrays[0].shape == (4, 28, 28)


@pytest.mark.parametrize('missing', ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
                                     't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'])
def test_load_mnist_missing_file(tmp_path, missing):
    write_mnist(tmp_path)
    (tmp_path / (missing + '.gz')).unlink()
    with pytest.raises(FileNotFoundError) as e:
        load_mnist(tmp_path)
    assert missing in str(e.value) and str(tmp_path) in str(e.value)


def test_load_mnist_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path / 'nowhere')


def test_load_mnist_count_mismatch(tmp_path):
    write_mnist(tmp_path)
    write_idx(tmp_path / 'train-labels-idx1-ubyte.gz', np.zeros(5, np.uint8))
    with pytest.raises(ValueError, match="6 images but 5 labels"):
        load_mnist(tmp_path)


@pytest.mark.parametrize('name, mangle, words', [
    ('cut.gz', lambda raw: gzip.compress(raw)[:30], 'corrupt gzip data'),
    ('crc.gz', lambda raw: gzip.compress(raw)[:-8] + b'\0' * 8, 'corrupt gzip data'),
    ('garbled.gz', lambda raw: b'\x1f\x8b' + bytes(range(40)), 'corrupt gzip data'),
    ('header', lambda raw: raw[:6], 'header is cut short'),
    ('body', lambda raw: raw[:-1], 'header says shape (4, 5)'),
])
def test_corrupt_idx_files_raise_value_error_naming_the_file(tmp_path, name, mangle, words):
    raw = bytes([0, 0, 8, 2, 0, 0, 0, 4, 0, 0, 0, 5]) + bytes(range(20))
    (tmp_path / name).write_bytes(mangle(raw))
    with pytest.raises(ValueError) as e:
        read_idx(tmp_path / name)
    assert words in str(e.value) and str(tmp_path / name) in str(e.value)


def test_load_mnist_with_a_corrupt_file(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / 't10k-labels-idx1-ubyte.gz'
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ValueError, match='t10k-labels-idx1-ubyte.gz: corrupt gzip data'):
        load_mnist(tmp_path)

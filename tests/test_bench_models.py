"""The models benchmark on tiny models: it runs and returns rows with positive times (no speed assertions)."""
import numpy as np
import pytest
import torch

from minima import init, nn
from minima.bench_models import MODELS, format_rows, main, profile_model, time_models, torch_twin


def test_tiny_rows():
    threads = torch.get_num_threads()
    rows = time_models(batch_size=4, repeats=2, warmup=1, tiny=True)
    assert [r['model'] for r in rows] == list(MODELS)
    for r in rows:
        assert r['minima_ms'] > 0 and r['torch_ms'] > 0 and r['parameters'] > 0 and r['batch'] == 4
        assert r['ratio'] == pytest.approx(r['minima_ms'] / r['torch_ms'])
    assert torch.get_num_threads() == threads                            # restored
    table = format_rows(rows)
    assert table.count('\n') == 1 + len(rows) and '| cnn |' in table and '| charlm |' in table


def test_main_prints_the_table(capsys):
    rows = main(['--tiny', '--repeats', '2', '--warmup', '0', '--models', 'charlm', '--batch-size', '3'])
    out = capsys.readouterr().out
    assert len(rows) == 1 and '| charlm |' in out and 'minima / torch' in out


def test_bad_input():
    with pytest.raises(ValueError, match="unknown model 'rnn'"): time_models(['rnn'])
    with pytest.raises(ValueError, match='repeats >= 1'): time_models(repeats=0)
    with pytest.raises(SystemExit) as e: main(['--models', 'cnn,rnn'])
    assert e.value.code == 2
    with pytest.raises(TypeError, match='expected a DigitsCNN or a CharTransformer'): torch_twin(nn.Linear(2, 2))
    with pytest.raises(ValueError, match='unknown model'): profile_model('rnn')


def test_profile_names_minima_functions():
    text = profile_model('cnn', steps=1, top=5, tiny=True)
    assert 'tottime' in text and 'function calls' in text

"""Every public class shows a real description in `help()`."""
import importlib, inspect, pydoc
import pytest

MODULES = ["minima", "minima.autograd", "minima.init", "minima.nn", "minima.nn.functional",
           "minima.nn.utils", "minima.data", "minima.optim", "minima.optim.lr_scheduler",
           "minima.optim.swa_utils", "minima.checkpoint", "minima.compare", "minima.problems"]

def _public_classes():
    seen = {}
    for modname in MODULES:
        mod = importlib.import_module(modname)
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if inspect.isclass(obj): seen.setdefault(f"{obj.__module__}.{obj.__qualname__}", obj)
    return sorted(seen.items())

CLASSES = _public_classes()

def test_classes_found():
    assert len(CLASSES) > 30

@pytest.mark.parametrize("qualname,cls", CLASSES, ids=[q for q, _ in CLASSES])
def test_help_has_real_description(qualname, cls):
    assert inspect.getdoc(cls), f"{qualname} has no docstring"
    text = pydoc.render_doc(cls, renderer=pydoc.plaintext)
    assert "Initialize self" not in text, f"help({qualname}) shows 'Initialize self.'"

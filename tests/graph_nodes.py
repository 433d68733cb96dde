"""Test helper: the size of the autograd graph behind a tensor, to show that it does not grow."""


def count_graph_nodes(t):
    "Number of distinct tensors reachable from `t` through the recorded graph (`_ctx` parents)."
    seen, stack = set(), [t]
    while stack:
        n = stack.pop()
        if id(n) in seen: continue
        seen.add(id(n))
        if n._ctx is not None: stack.extend(n._ctx[0])
    return len(seen)

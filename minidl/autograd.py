"""Lesson 03: autograd. From the chain rule to a scalar engine, gradient checking and torch.autograd.

Notation of the lesson: a computation graph is a DAG of nodes v_1 ... v_n, each computed from its
inputs; for the output L, the adjoint of a node is  v̄ = dL/dv.  Reverse mode visits the nodes
in reverse topological order and applies the chain rule

    ū  +=  v̄ * dv/du      for every input u of every node v,

so a node used k times receives the sum of k contributions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .broadcasting import sum_to_shape


class Value:
    """A scalar that remembers how it was computed, for reverse-mode differentiation.

    ``data`` is a Python float, ``grad`` is dL/d(this node) after ``L.backward()``. Every operation
    makes a new node with its inputs in ``_prev`` and a ``_backward`` closure that adds the
    node's contribution  grad * (local derivative)  to each input's grad.
    """

    def __init__(self, data: float, _prev: tuple[Value, ...] = (), _op: str = ""):
        self.data = float(data)
        self.grad = 0.0
        self._prev = _prev
        self._op = _op
        self._backward: Callable[[], None] = lambda: None

    def __repr__(self) -> str:
        return f"Value(data={self.data:.4g}, grad={self.grad:.4g})"

    # -- binary operations: out = f(self, other); d out/d self and d out/d other -------------
    def __add__(self, other: Value | float) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward() -> None:            # d(a + b)/da = 1, d(a + b)/db = 1
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other: Value | float) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward() -> None:            # d(a b)/da = b, d(a b)/db = a
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __pow__(self, k: float) -> Value:
        if not isinstance(k, int | float):
            raise TypeError("Value ** k supports a number exponent k only")
        out = Value(self.data**k, (self,), f"**{k:g}")

        def _backward() -> None:            # d(a^k)/da = k a^(k-1)
            self.grad += k * self.data ** (k - 1) * out.grad

        out._backward = _backward
        return out

    def __neg__(self) -> Value:             # -a = a * (-1)
        return self * -1.0

    def __sub__(self, other: Value | float) -> Value:
        return self + (-other)

    def __truediv__(self, other: Value | float) -> Value:
        return self * other**-1.0

    # reflected operations: 2 + a calls a.__radd__(2), 2 / a calls a.__rtruediv__(2)
    def __radd__(self, other: float) -> Value:
        return self + other

    def __rmul__(self, other: float) -> Value:
        return self * other

    def __rsub__(self, other: float) -> Value:
        return Value(other) + (-self)

    def __rtruediv__(self, other: float) -> Value:
        return Value(other) * self**-1.0

    # -- unary functions ------------------------------------------------------------------
    def tanh(self) -> Value:
        t = math.tanh(self.data)
        out = Value(t, (self,), "tanh")

        def _backward() -> None:            # d tanh(a)/da = 1 - tanh(a)^2
            self.grad += (1.0 - t * t) * out.grad

        out._backward = _backward
        return out

    def relu(self) -> Value:
        out = Value(max(self.data, 0.0), (self,), "relu")

        def _backward() -> None:            # d relu(a)/da = 1 if a > 0 else 0
            self.grad += (self.data > 0) * out.grad

        out._backward = _backward
        return out

    def exp(self) -> Value:
        e = math.exp(self.data)
        out = Value(e, (self,), "exp")

        def _backward() -> None:            # d exp(a)/da = exp(a)
            self.grad += e * out.grad

        out._backward = _backward
        return out

    def log(self) -> Value:
        out = Value(math.log(self.data), (self,), "log")

        def _backward() -> None:            # d log(a)/da = 1 / a
            self.grad += out.grad / self.data

        out._backward = _backward
        return out

    # -- reverse mode -----------------------------------------------------------------------
    def backward(self) -> None:
        """Fill ``.grad`` of every node of the graph with d(self)/d(node).

        Interior nodes start from 0 on every call (PyTorch keeps no gradients for them);
        leaves accumulate, as in PyTorch: calling backward() twice without zeroing the
        leaves' grads adds the gradient twice.
        """
        order = topological_order(self)
        for node in order:
            if node._prev:
                node.grad = 0.0
        self.grad += 1.0                    # dL/dL = 1
        for node in reversed(order):        # every node before its inputs
            node._backward()


def topological_order(root: Value) -> list[Value]:
    """The nodes of root's graph, each after all of its inputs (depth-first post-order)."""
    order: list[Value] = []
    seen: set[int] = set()

    def visit(node: Value) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        for child in node._prev:
            visit(child)
        order.append(node)

    visit(root)
    return order


def draw_graph(root: Value, names: dict[int, str] | None = None, ax=None):
    """Draw root's computation graph with matplotlib: one box per node, data and grad inside.

    Interior nodes sit in columns by depth (the longest path from an input); each input sits just
    left of its first use, so the output is on the right. An input used twice by the same node
    gets two curved arrows, and an arrow that skips a column bends around the boxes in between.
    ``names`` maps id(node) to a label such as "a". Returns the matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    names = names or {}
    order = topological_order(root)
    depth: dict[int, int] = {}
    for node in order:                      # inputs come first, so their depth is known
        depth[id(node)] = 1 + max((depth[id(c)] for c in node._prev), default=-1)
    first_use: dict[int, int] = {}
    for node in order:                      # move each input just left of its first use
        for child in node._prev:
            if not child._prev:
                first_use[id(child)] = min(first_use.get(id(child), depth[id(node)]), depth[id(node)])
    depth.update({i: d - 1 for i, d in first_use.items()})
    columns: dict[int, list[Value]] = {}
    for node in order:
        columns.setdefault(depth[id(node)], []).append(node)
    pos = {id(n): (d, -i + (len(col) - 1) / 2) for d, col in columns.items() for i, n in enumerate(col)}
    if ax is None:
        _, ax = plt.subplots(figsize=(2.2 * len(columns) + 1, 1.3 * max(map(len, columns.values())) + 1))
    boxes = {}
    for node in order:
        x, y = pos[id(node)]
        label = names.get(id(node), node._op or "input")
        text = ax.text(x, y, f"{label}\ndata {node.data:.3g}\ngrad {node.grad:.3g}", ha="center", va="center",
                       fontsize=8, zorder=3,
                       bbox={"boxstyle": "round", "fc": "#e8f0fe" if node._prev else "#fff4d6", "ec": "0.4"})
        boxes[id(node)] = text.get_bbox_patch()
    def blocked(a: tuple[float, float], b: tuple[float, float], rad: float) -> bool:
        """Whether the arc from a to b (arc3 with this rad, in inches) runs through another box."""
        (ax_, ay), (bx, by) = (a[0] * 2.2, a[1] * 1.3), (b[0] * 2.2, b[1] * 1.3)
        mx, my = (ax_ + bx) / 2 + rad * (by - ay), (ay + by) / 2 - rad * (bx - ax_)
        for t in (i / 20 for i in range(2, 19)):
            px = (1 - t) ** 2 * ax_ + 2 * t * (1 - t) * mx + t**2 * bx
            py = (1 - t) ** 2 * ay + 2 * t * (1 - t) * my + t**2 * by
            if any(abs(px - 2.2 * qx) < 0.5 and abs(py - 1.3 * qy) < 0.4
                   for q, (qx, qy) in pos.items() if (qx, qy) not in (a, b)):
                return True
        return False

    for node in order:
        for k, child in enumerate(node._prev):
            a, b = pos[id(child)], pos[id(node)]
            if node._prev.count(child) > 1:         # the same input twice: one arc above, one below
                rad = 0.3 if node._prev[:k].count(child) % 2 == 0 else -0.3
            else:
                rad = next((r for r in (0.0, -0.3, 0.3, -0.6, 0.6) if not blocked(a, b, r)), 0.3)
            ax.annotate("", b, a, zorder=4,
                        arrowprops={"arrowstyle": "-|>", "color": "0.45", "mutation_scale": 12,
                                    "patchA": boxes[id(child)], "patchB": boxes[id(node)],
                                    "connectionstyle": f"arc3,rad={rad}"})
    ax.set_xlim(-0.6, max(columns) + 0.6)
    ys = [y for _, y in pos.values()]
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    ax.axis("off")
    return ax


def numerical_grad(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Central differences of a scalar function f at x; same shape, dtype and device as x.

        df/dx_i  ≈  (f(x + eps e_i) - f(x - eps e_i)) / (2 eps),

    whose error is O(eps^2). One pair of evaluations per element: a check, not a training tool.
    ``x`` is left unchanged.
    """
    x = x.detach()
    grad = torch.empty(x.shape, dtype=x.dtype, device=x.device)    # contiguous, whatever x's strides
    flat = grad.view(-1)
    for i in range(x.numel()):
        step = torch.zeros(x.numel(), dtype=x.dtype, device=x.device)
        step[i] = eps
        step = step.view(x.shape)
        flat[i] = (f(x + step) - f(x - step)) / (2 * eps)
    return grad


def linear_backward(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, grad_out: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of a linear layer  y = x @ w.T + b  by hand.

    x: [..., in], w: [out, in], b: [out], grad_out = dL/dy: [..., out]. Returns
        dL/dx = grad_out @ w                          [..., in]
        dL/dw = sum over the batch of grad_out^T x    [out, in]
        dL/db = grad_out summed over every batch dim  [out]   (b was broadcast: lesson 02's sum_to_shape)
    """
    grad_x = grad_out @ w
    grad_w = grad_out.reshape(-1, w.shape[0]).T @ x.reshape(-1, w.shape[1])
    grad_b = sum_to_shape(grad_out, b.shape)
    return grad_x, grad_w, grad_b


class SiLU(torch.autograd.Function):
    """SiLU(x) = x * sigmoid(x), with its derivative written by hand.

    With s = sigmoid(x):  d SiLU/dx = s + x s (1 - s) = s (1 + x (1 - s)).
    Use it as ``SiLU.apply(x)``.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x * torch.sigmoid(x)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x)
        return grad_out * s * (1 + x * (1 - s))

"""Lesson 03, autograd: the exercises and how they are checked.

Value and SiLU are classes, so they get their own probes: a Value probe builds an expression
from a small program (a list of tuples, plain data), runs backward and returns data and
gradients; the SiLU probe calls forward and backward with a stand-in ``ctx`` and runs
``torch.autograd.gradcheck``. Every call into the learner's class is made inside
``learner_code()``, where the forbidden built-ins are off.
"""

from __future__ import annotations

import math

import torch

from ..exercise import Case, Exercise, Group, Lesson
from ..i18n import N_
from ..sandbox import learner_code


# -- Value --------------------------------------------------------------------------------------
# A program is a list of steps; step k makes node k. ("leaf", x) is Value(x); the other steps
# name an operation and the indices of earlier nodes (or a number c). The last node is the output.
BINARY = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
          "div": lambda a, b: a / b}
WITH_NUMBER = {"addc": lambda a, c: a + c, "mulc": lambda a, c: a * c, "pow": lambda a, c: a**c,
               "radd": lambda a, c: c + a, "rsub": lambda a, c: c - a, "rmul": lambda a, c: c * a,
               "rdiv": lambda a, c: c / a}
UNARY = {"neg": lambda a: -a, "tanh": lambda a: a.tanh(), "relu": lambda a: a.relu(),
         "exp": lambda a: a.exp(), "log": lambda a: a.log()}
SPELLING = {"add": "{} + {}", "sub": "{} - {}", "mul": "{} * {}", "div": "{} / {}", "addc": "{} + {}",
            "mulc": "{} * {}", "pow": "{} ** {}", "radd": "{1} + {0}", "rsub": "{1} - {0}", "rmul": "{1} * {0}",
            "rdiv": "{1} / {0}", "neg": "-{}", "tanh": "{}.tanh()", "relu": "{}.relu()", "exp": "{}.exp()",
            "log": "{}.log()"}


def build(program: list[tuple], leaf) -> list:
    """Run ``program`` with ``leaf(x)`` making the inputs (Value, or a torch scalar); return every node."""
    nodes: list = []
    for op, *rest in program:
        if op == "leaf":
            nodes.append(leaf(rest[0]))
        elif op in BINARY:
            nodes.append(BINARY[op](nodes[rest[0]], nodes[rest[1]]))
        elif op in WITH_NUMBER:
            nodes.append(WITH_NUMBER[op](nodes[rest[0]], rest[1]))
        else:
            nodes.append(UNARY[op](nodes[rest[0]]))
    return nodes


def spell(program: list[tuple]) -> str:
    """The program as the learner would write it: 'a = Value(2.0); b = a + a; ...'."""
    names = [chr(ord("a") + i) if i < 26 else f"n{i}" for i in range(len(program))]
    lines = []
    for name, (op, *rest) in zip(names, program):
        if op == "leaf":
            lines.append(f"{name} = Value({rest[0]:g})")
        elif op in WITH_NUMBER:
            lines.append(f"{name} = " + SPELLING[op].format(names[rest[0]], f"{rest[1]:g}"))
        else:
            lines.append(f"{name} = " + SPELLING[op].format(*(names[r] for r in rest)))
    return "; ".join(lines) + f"; {names[len(program) - 1]}.backward()"


def kind_of(x) -> str:
    return "number" if type(x) in (int, float) else type(x).__name__


def value_probe(fn, program: list[tuple], again: bool = False) -> dict:
    """Forward values of every node and gradients of the inputs after ``output.backward()``.

    With ``again``, the inputs' grads are then set to 0 and backward() is called a second time:
    the gradients must come out the same.
    """
    with learner_code():
        nodes = build(program, fn)
        leaves = [n for n, (op, *_) in zip(nodes, program) if op == "leaf"]
        nodes[-1].backward()
        first = [float(v.grad) for v in leaves]
        if again:
            for v in leaves:
                v.grad = 0.0
            nodes[-1].backward()
    result = {
        N_("type of .data and .grad"): sorted({kind_of(n.data) for n in nodes} | {kind_of(v.grad) for v in leaves}),
        N_("forward values (.data of every node)"): torch.tensor([float(n.data) for n in nodes], dtype=torch.float64),
        N_("gradients of the inputs"): torch.tensor(first, dtype=torch.float64),
    }
    if again:
        result[N_("gradients after zeroing and calling backward() again")] = torch.tensor(
            [float(v.grad) for v in leaves], dtype=torch.float64)
    return result


def leaf_values(draw, n: int) -> list[tuple]:
    return [("leaf", round(draw.rng.uniform(-2.0, 2.0), 2) or 0.5) for _ in range(n)]


def tree_program(draw, steps: int) -> list[tuple]:
    """A random expression in which every node is used once (a tree), inputs in [-2, 2]."""
    program = leaf_values(draw, 3)
    free = [0, 1, 2]
    for _ in range(steps):
        op = draw.rng.choice(["add", "sub", "mul", "mulc", "addc", "tanh", "pow"])
        if op in BINARY and len(free) >= 2:
            i, j = free.pop(draw.rng.randrange(len(free))), free.pop(draw.rng.randrange(len(free)))
            program.append((op, i, j))
        elif op in ("mulc", "addc"):
            program.append((op, free.pop(draw.rng.randrange(len(free))), round(draw.rng.uniform(-2, 2), 1) or 1.5))
        elif op == "pow":
            program.append(("pow", free.pop(draw.rng.randrange(len(free))), draw.rng.choice([2, 3, 2.0])))
        else:
            program.append(("tanh", free.pop(draw.rng.randrange(len(free)))))
        free.append(len(program) - 1)
    while len(free) > 1:                    # join what is left into one output
        program.append(("add", free.pop(0), free.pop(0)))
        free.append(len(program) - 1)
    return program


def value_simple(draw):
    yield Case("", (), {"program": [("leaf", 2.0), ("leaf", -3.0), ("mul", 0, 1)]}, size=3, note="c = a * b")
    yield Case("", (), {"program": [("leaf", 1.5), ("leaf", 0.5), ("leaf", -2.0), ("add", 0, 1), ("mul", 3, 2)]},
               size=5, note="e = (a + b) * c")
    for steps in (3, 4, 6):
        program = tree_program(draw, steps)
        yield Case("", (), {"program": program}, size=len(program), note=spell(program))


def value_reused(draw):
    fixed = [
        [("leaf", 3.0), ("add", 0, 0)],
        [("leaf", -1.5), ("mul", 0, 0)],
        [("leaf", 2.0), ("leaf", 0.5), ("mul", 0, 1), ("add", 2, 0)],
        [("leaf", 0.7), ("tanh", 0), ("mul", 1, 1), ("add", 2, 1)],
    ]
    for program in fixed:
        yield Case("", (), {"program": program}, size=len(program), note=spell(program))
    program = leaf_values(draw, 2)
    for _ in range(5):
        i, j = draw.rng.randrange(len(program)), draw.rng.randrange(len(program))
        program.append((draw.rng.choice(["add", "mul", "sub"]), i, j))
    program.append(("tanh", len(program) - 1))
    yield Case("", (), {"program": program}, size=len(program), note=spell(program))


def value_unary(draw):
    x = round(draw.rng.uniform(0.3, 1.5), 2)
    programs = [
        [("leaf", x), ("tanh", 0)],
        [("leaf", x), ("exp", 0)],
        [("leaf", x), ("log", 0)],
        [("leaf", -x), ("relu", 0)],
        [("leaf", x), ("relu", 0)],
        [("leaf", x), ("leaf", -x), ("mul", 0, 1), ("exp", 2), ("addc", 3, 1.0), ("log", 4)],
        [("leaf", x), ("pow", 0, 3), ("tanh", 1), ("pow", 2, 0.5)],
    ]
    for program in programs:
        yield Case("", (), {"program": program}, size=len(program), note=spell(program))


def value_reflected(draw):
    x = round(draw.rng.uniform(0.5, 2.0), 2)
    programs = [
        [("leaf", x), ("radd", 0, 2.0)],
        [("leaf", x), ("rsub", 0, 3.0)],
        [("leaf", x), ("rmul", 0, -4.0)],
        [("leaf", x), ("rdiv", 0, 1.0)],
        [("leaf", x), ("neg", 0)],
        [("leaf", x), ("leaf", x + 1), ("sub", 0, 1), ("div", 2, 1)],
    ]
    for program in programs:
        yield Case("", (), {"program": program}, size=len(program), note=spell(program))


def value_again(draw):
    programs = [
        [("leaf", 1.5), ("leaf", -0.5), ("mul", 0, 1), ("tanh", 2)],
        [("leaf", 0.8), ("leaf", 2.0), ("sub", 0, 1), ("div", 2, 1), ("mul", 3, 0)],
        tree_program(draw, 5),
    ]
    for program in programs:
        yield Case("", (), {"program": program, "again": True}, size=len(program), note=spell(program))


VALUE_FORBIDDEN = ("torch.autograd.grad", "torch.autograd.backward", "torch.Tensor.backward")

# -- numerical_grad ------------------------------------------------------------------------------
# The functions f that numerical_grad is tried on: a name in the case, looked up by the probe.


def f_squares(x):
    return (x * x).sum()


def f_trig(x):
    return (x.sin() * (2 * x).cos()).sum()


def f_logsumexp(x):
    return x.exp().sum().log()


def f_product(x):
    return (x[..., :1] * x).sum() ** 2 / 10


FUNCTIONS = {"sum(x**2)": f_squares, "sum(sin(x) cos(2x))": f_trig, "log(sum(exp(x)))": f_logsumexp,
             "(sum(x_0 x))**2 / 10": f_product}


def numerical_probe(fn, f: str, x: torch.Tensor, **kwargs) -> dict:
    """The estimate for the named function, and whether x was left as it was."""
    before = x.clone()
    with learner_code():
        out = fn(FUNCTIONS[f], x, **kwargs)
    return {"gradient": out, N_("x unchanged after the call"): bool(torch.equal(x, before))}


def numerical_cases(draw):
    for name, shape in zip(FUNCTIONS, [(4,), (2, 3), (5,), (3, 2)]):
        yield Case("", (name, draw.randn(*shape)), size=len(shape))
    yield Case("", ("sum(x**2)", draw.randn(3, dtype=torch.float32)), {"eps": 1e-3}, size=1, note="float32, eps=1e-3")


def numerical_edges(draw):
    yield Case("", ("sum(sin(x) cos(2x))", draw.randn(1)), size=0, note="a single element")
    yield Case("", ("log(sum(exp(x)))", draw.randn(2, 2)), {"eps": 1e-4}, size=2, note="eps passed as a keyword")


# -- linear_backward -----------------------------------------------------------------------------
def linear_cases(draw, batch: tuple[int, ...], dtype=None):
    n_in, n_out = draw.rng.randint(1, 5), draw.rng.randint(1, 5)
    dtype = dtype or draw.dtype()
    return Case("", (draw.randn(*batch, n_in, dtype=dtype), draw.randn(n_out, n_in, dtype=dtype),
                     draw.randn(n_out, dtype=dtype), draw.randn(*batch, n_out, dtype=dtype)),
                size=len(batch) * 10 + n_in * n_out)


def linear_2d(draw):
    for _ in range(4):
        yield linear_cases(draw, (draw.rng.randint(1, 6),))


def linear_batch_dims(draw):
    for ndim in (2, 3, 2):
        yield linear_cases(draw, draw.shape(ndim, 1, 4))


def linear_vector(draw):
    yield linear_cases(draw, ())


# -- SiLU ---------------------------------------------------------------------------------------
class Ctx:
    """A stand-in for autograd's ``ctx``: forward and backward are called on it directly."""

    def __init__(self, n_inputs: int = 1):
        self.saved_tensors: tuple = ()
        self.needs_input_grad = (True,) * n_inputs

    def save_for_backward(self, *tensors):
        self.saved_tensors = tensors

    def mark_non_differentiable(self, *tensors):
        pass

    def mark_dirty(self, *tensors):
        pass

    def set_materialize_grads(self, value: bool):
        pass


def silu_probe(fn, x: torch.Tensor, grad_out: torch.Tensor) -> dict:
    """forward(ctx, x), backward(ctx, grad_out) called directly, then torch.autograd.gradcheck on apply."""
    cls = fn
    ctx = Ctx()
    with learner_code(), torch.no_grad():
        y = cls.forward(ctx, x)
        g = cls.backward(ctx, grad_out)
    if type(g) is tuple:
        g = g[0]
    probe_x = torch.linspace(-4, 4, 7, dtype=torch.float64, device=x.device).requires_grad_()
    try:
        passes = bool(torch.autograd.gradcheck(cls.apply, (probe_x,), eps=1e-6, atol=1e-5, raise_exception=False))
    except Exception:
        passes = False
    return {N_("output of forward"): y, N_("gradient from backward"): g, N_("passes torch.autograd.gradcheck"): passes}


def silu_values(draw):
    for ndim in (1, 2, 3):
        shape = draw.shape(ndim, 1, 5)
        dtype = draw.dtype()
        yield Case("", (draw.randn(*shape, dtype=dtype, scale=3.0), draw.randn(*shape, dtype=dtype)), size=len(shape))


def silu_edges(draw):
    x = torch.tensor([-30.0, -1.0, 0.0, 1.0, 30.0], dtype=torch.float64)
    yield Case("", (x, torch.ones_like(x)), size=5, note="large and small inputs, 0")
    x = torch.tensor([-100.0, -20.0, 0.0, 20.0, 100.0])
    yield Case("", (x, torch.ones_like(x)), size=5, note="|x| up to 100 in float32: exp(100) overflows to inf")
    yield Case("", (torch.zeros(0), torch.zeros(0)), size=0, note="an empty tensor")


SILU_FORBIDDEN = ("torch.nn.functional.silu", "torch.nn.SiLU", "aten::silu", "aten::silu_backward",
                  "torch.autograd.grad", "torch.autograd.backward", "torch.Tensor.backward", "torch.func.grad",
                  "torch.func.vjp", "torch.autograd.functional.vjp")

LESSON = Lesson(
    key="03_autograd",
    title="Autograd",
    builds="a scalar autograd engine, numerical gradients, a linear layer's backward, a custom autograd Function",
    exercises=(
        Exercise(
            id="autograd.Value",
            title="A scalar autograd engine",
            signature="class Value(data): .data .grad + - * / ** tanh relu exp log backward()",
            builds="reverse-mode differentiation of scalar expressions, with reused nodes",
            points=6,
            cpu_only=True,
            forbidden=VALUE_FORBIDDEN,
            probe=value_probe,
            groups=(
                Group("simple expressions", 2, value_simple,
                      hint="Each operation's _backward adds out.grad times its local derivative to each input: "
                           "d(a*b)/da = b, d(a+b)/da = 1. backward() sets the output's grad to 1 and calls "
                           "_backward on every node in reverse topological order."),
                Group("reused nodes", 2, value_reused,
                      hint="A node used more than once must accumulate its gradient: for b = a + a, a.grad must "
                           "be 2. Use += in every _backward, never = (an assignment overwrites the first "
                           "contribution with the second)."),
                Group("unary functions", 1, value_unary,
                      hint="Local derivatives: tanh' = 1 - tanh^2, exp' = exp, log'(a) = 1/a, relu'(a) = 1 if a > 0 "
                           "else 0, (a^k)' = k a^(k-1)."),
                Group("reflected ops", 1, value_reflected,
                      hint="2 + a calls a.__radd__(2) and 2 / a calls a.__rtruediv__(2): wrap the number in a "
                           "Value; define __neg__, __sub__, __rsub__ and __truediv__ too."),
                Group("backward again", 1, value_again,
                      hint="After zeroing the inputs' grads, a second backward() must give the same gradients. "
                           "Rebuild the topological order on every call (no visited set kept between calls or "
                           "as a default argument) and start every interior node from grad 0."),
            ),
            hints={"type": "Keep .data and .grad plain Python floats (no torch inside the class), and make every "
                           "operation return a Value."},
        ),
        Exercise(
            id="autograd.numerical_grad",
            title="Numerical gradients by central differences",
            signature="(f, x, eps=1e-6) -> Tensor",
            builds="the gradient check every autograd implementation is tested with",
            points=3,
            forbidden=("torch.autograd.grad", "torch.autograd.backward", "torch.Tensor.backward",
                       "torch.autograd.gradcheck", "torch.autograd.functional.jacobian", "torch.func.grad",
                       "torch.func.jacrev", "torch.func.vjp"),
            probe=numerical_probe,
            tolerances={torch.float32: (1e-2, 1e-2), torch.float64: (1e-6, 1e-8)},
            groups=(
                Group("values", 3, numerical_cases,
                      hint="For each element i: (f(x + eps e_i) - f(x - eps e_i)) / (2 eps), where e_i is 1 at "
                           "position i and 0 elsewhere; the result has x's shape. Perturb a copy of x: the "
                           "caller's x must be unchanged afterwards."),
                Group("edge cases", 1, numerical_edges),
            ),
        ),
        Exercise(
            id="autograd.linear_backward",
            title="The backward pass of a linear layer",
            signature="(x, w, b, grad_out) -> (grad_x, grad_w, grad_b)",
            builds="dL/dx, dL/dw and dL/db of y = x @ w.T + b by hand, with batch dimensions",
            points=4,
            forbidden=("torch.autograd.grad", "torch.autograd.backward", "torch.Tensor.backward", "torch.func.vjp",
                       "torch.autograd.functional.vjp", "torch.func.grad"),
            groups=(
                Group("one batch dim", 2, linear_2d,
                      hint="grad_x = grad_out @ w, grad_w = grad_out.T @ x, grad_b = grad_out.sum(0)."),
                Group("more batch dims", 2, linear_batch_dims,
                      hint="w and b were used by every batch element: flatten the batch dims "
                           "(grad_out.reshape(-1, out).T @ x.reshape(-1, in)) and sum grad_out over all of them "
                           "(lesson 02's sum_to_shape(grad_out, b.shape))."),
                Group("a single vector", 1, linear_vector,
                      hint="x of shape [in] has no batch dimension: grad_w is the outer product of grad_out and x."),
            ),
            hints={"shape": "Each gradient has the shape of what it is the gradient of: grad_x like x, grad_w like w "
                            "[out, in], grad_b like b [out]."},
        ),
        Exercise(
            id="autograd.SiLU",
            title="A custom autograd Function: SiLU",
            signature="class SiLU(torch.autograd.Function): forward(ctx, x), backward(ctx, g)",
            builds="x * sigmoid(x) with a hand-written backward that passes gradcheck",
            points=3,
            probe=silu_probe,
            forbidden=SILU_FORBIDDEN,
            groups=(
                Group("values and gradients", 3, silu_values,
                      hint="forward: save x with ctx.save_for_backward(x), return x * sigmoid(x). backward: with "
                           "s = sigmoid(x), return grad_out * s * (1 + x * (1 - s))."),
                Group("edge cases", 1, silu_edges,
                      hint="Use torch.sigmoid (stable for large |x|) rather than 1 / (1 + exp(-x)) written out, and "
                           "write the derivative with s = sigmoid(x): g * s * (1 + x * (1 - s)). A formula with "
                           "exp(-x) in it gives inf / inf = NaN once exp(-x) overflows (x = -100 in float32)."),
            ),
        ),
    ),
)

"""The lesson-03 checks: correct alternatives score full marks; the classic mistakes fail, named."""

import math

import torch

from autograder import check


def failure_text(result) -> str:
    f = result.failures[0] if result.failures else None
    return (result.message + " " + (f.hint if f else "")).lower()


# -- Value -----------------------------------------------------------------------------------------
def make_value(accumulate=True, zero_interior=True, persistent_visited=False):
    """A Value written differently from the reference (iterative order, explicit ops), with switchable bugs."""

    class Value:
        _visited_forever: set = set()

        def __init__(self, data, children=(), local=()):
            self.data, self.grad = float(data), 0.0
            self.children, self.local = children, local   # local[k] = d self / d children[k]

        @staticmethod
        def lift(x):
            return x if isinstance(x, Value) else Value(x)

        def __add__(self, o):
            o = Value.lift(o)
            return Value(self.data + o.data, (self, o), (1.0, 1.0))

        def __mul__(self, o):
            o = Value.lift(o)
            return Value(self.data * o.data, (self, o), (o.data, self.data))

        def __sub__(self, o):
            o = Value.lift(o)
            return Value(self.data - o.data, (self, o), (1.0, -1.0))

        def __truediv__(self, o):
            o = Value.lift(o)
            return Value(self.data / o.data, (self, o), (1.0 / o.data, -self.data / o.data**2))

        def __pow__(self, k):
            return Value(self.data**k, (self,), (k * self.data ** (k - 1),))

        def __neg__(self):
            return Value(-self.data, (self,), (-1.0,))

        __radd__ = __add__
        __rmul__ = __mul__

        def __rsub__(self, o):
            return Value.lift(o) - self

        def __rtruediv__(self, o):
            return Value.lift(o) / self

        def tanh(self):
            t = math.tanh(self.data)
            return Value(t, (self,), (1 - t * t,))

        def relu(self):
            return Value(max(0.0, self.data), (self,), (1.0 if self.data > 0 else 0.0,))

        def exp(self):
            e = math.exp(self.data)
            return Value(e, (self,), (e,))

        def log(self):
            return Value(math.log(self.data), (self,), (1 / self.data,))

        def backward(self):
            order, seen = [], (Value._visited_forever if persistent_visited else set())
            stack = [(self, False)]
            while stack:                       # iterative post-order
                node, done = stack.pop()
                if done:
                    order.append(node)
                    continue
                if node in seen:
                    continue
                seen.add(node)
                stack.append((node, True))
                stack.extend((c, False) for c in node.children)
            if zero_interior:
                for node in order:
                    if node.children:
                        node.grad = 0.0
            self.grad = 1.0 if zero_interior else self.grad + 1.0
            for node in reversed(order):
                for child, d in zip(node.children, node.local):
                    if accumulate:
                        child.grad += d * node.grad
                    else:
                        child.grad = d * node.grad

    return Value


def test_value_alternative_passes():
    result = check("autograd.Value", make_value())
    assert result.passed and result.score == result.max_score, str(result)


def test_value_that_overwrites_instead_of_accumulating_fails_naming_it():
    result = check("autograd.Value", make_value(accumulate=False))
    assert not result.passed
    assert result.failures[0].group == "reused nodes"
    assert "accumulat" in failure_text(result)
    assert "b = a + a" in str(result)                  # the smallest failing case is the example


def test_value_whose_second_backward_differs_fails_naming_it():
    result = check("autograd.Value", make_value(persistent_visited=True))
    assert not result.passed and result.failures[0].group == "backward again"
    text = failure_text(result)
    assert "again" in text and "zeroing" in text and "same gradients" in text


def test_value_that_keeps_interior_grads_between_calls_fails_the_second_backward():
    result = check("autograd.Value", make_value(zero_interior=False))
    assert not result.passed and result.failures[0].group == "backward again"


def test_value_built_on_torch_fails():
    class TorchValue(make_value()):
        def __init__(self, data, *args, **kwargs):
            super().__init__(data, *args, **kwargs)
            self.data = torch.tensor(self.data, dtype=torch.float64)

    result = check("autograd.Value", TorchValue)
    assert not result.passed and "type of .data" in result.message


def test_value_subclassing_the_reference_is_refused():
    import minidl.autograd as ref

    class Borrowed(ref.Value):
        pass

    assert check("autograd.Value", Borrowed).status == "forbidden"


# -- numerical_grad ----------------------------------------------------------------------------------
def numerical_grad_loop(f, x, eps=1e-6):
    out = torch.zeros(x.numel(), dtype=torch.float64, device=x.device)
    for i in range(x.numel()):
        plus, minus = x.clone().double().reshape(-1), x.clone().double().reshape(-1)
        plus[i] += eps
        minus[i] -= eps
        out[i] = (f(plus.reshape(x.shape).to(x.dtype)) - f(minus.reshape(x.shape).to(x.dtype))) / (2 * eps)
    return out.reshape(x.shape).to(x.dtype)


def test_numerical_grad_alternative_passes():
    result = check("autograd.numerical_grad", numerical_grad_loop)
    assert result.passed, str(result)


def test_numerical_grad_forward_difference_and_in_place_fail():
    def forward_difference(f, x, eps=1e-6):
        g = torch.zeros_like(x)
        for i in range(x.numel()):
            e = torch.zeros_like(x).reshape(-1)
            e[i] = eps
            g.reshape(-1)[i] = (f(x + e.reshape(x.shape)) - f(x)) / eps
        return g

    assert not check("autograd.numerical_grad", forward_difference).passed

    def in_place(f, x, eps=1e-6):
        g, flat = torch.zeros_like(x), x.view(-1)
        for i in range(x.numel()):
            flat[i] += eps
            hi = f(x)
            flat[i] -= 2 * eps
            lo = f(x)
            g.view(-1)[i] = (hi - lo) / (2 * eps)
        return g

    result = check("autograd.numerical_grad", in_place)
    assert not result.passed and "unchanged" in failure_text(result)


def test_numerical_grad_using_autograd_is_refused():
    def cheat(f, x, eps=1e-6):
        x = x.clone().requires_grad_()
        return torch.autograd.grad(f(x), x)[0]

    result = check("autograd.numerical_grad", cheat)
    assert result.status == "forbidden" and result.score == 0


# -- linear_backward ---------------------------------------------------------------------------------
def linear_backward_einsum(x, w, b, grad_out):
    batch = "abcdefg"[: x.dim() - 1]
    return (torch.einsum(f"{batch}o,oi->{batch}i", grad_out, w),
            torch.einsum(f"{batch}o,{batch}i->oi", grad_out, x),
            grad_out.reshape(-1, w.shape[0]).sum(0))


def test_linear_backward_alternative_passes():
    result = check("autograd.linear_backward", linear_backward_einsum)
    assert result.passed, str(result)


def linear_backward_loops_in_float64(x, w, b, grad_out):
    """One batch row at a time, accumulated in float64, cast back at the end."""
    xs, gs = x.double().reshape(-1, w.shape[1]), grad_out.double().reshape(-1, w.shape[0])
    grad_w = torch.zeros(w.shape, dtype=torch.float64, device=w.device)
    grad_b = torch.zeros(b.shape, dtype=torch.float64, device=b.device)
    for row_x, row_g in zip(xs, gs):
        grad_w += torch.outer(row_g, row_x)
        grad_b += row_g
    grad_x = (gs @ w.double()).reshape(x.shape)
    return grad_x.to(x.dtype), grad_w.to(w.dtype), grad_b.to(b.dtype)


def test_linear_backward_with_loops_in_float64_passes():
    result = check("autograd.linear_backward", linear_backward_loops_in_float64)
    assert result.passed, str(result)


def test_linear_backward_that_forgets_extra_batch_dims_fails():
    def two_d_only(x, w, b, grad_out):
        return grad_out @ w, grad_out.transpose(-1, -2) @ x, grad_out.sum(0)

    result = check("autograd.linear_backward", two_d_only)
    assert not result.passed and result.failures[0].group in ("more batch dims", "a single vector")


# -- SiLU ------------------------------------------------------------------------------------------
class SiLUAlternative(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        s = 1 / (1 + torch.exp(-x))
        ctx.s, ctx.x = s, x
        return x * s

    @staticmethod
    def backward(ctx, g):
        return (g * (ctx.s + ctx.x * ctx.s * (1 - ctx.s)),)


class SiLUWrongBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * torch.sigmoid(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.sigmoid(x)              # forgot the product rule


class SiLUWithAutograd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.nn.functional.silu(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.sigmoid(x) * (1 + x * (1 - torch.sigmoid(x)))


class SiLUOverflowingBackward(torch.autograd.Function):
    """The derivative written out with exp(-x) squared: right up to |x| ~ 40, NaN (inf / inf) in float32 at -100."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x / (1 + torch.exp(-x))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        e = torch.exp(-x)
        return g * (1 + e + x * e) / (1 + e) ** 2


def test_silu_whose_backward_overflows_fails_on_large_inputs():
    result = check("autograd.SiLU", SiLUOverflowingBackward)
    assert result.score < result.max_score and result.failures[0].group == "edge cases", str(result)
    assert "NaN" in result.message and "torch.sigmoid" in result.failures[0].hint, str(result)


def test_silu_alternative_passes():
    result = check("autograd.SiLU", SiLUAlternative)
    assert result.passed, str(result)


def test_silu_wrong_backward_fails_and_builtin_is_refused():
    result = check("autograd.SiLU", SiLUWrongBackward)
    assert not result.passed and "gradient from backward" in result.message
    assert check("autograd.SiLU", SiLUWithAutograd).status == "forbidden"

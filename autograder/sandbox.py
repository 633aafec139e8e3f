"""Forbidden built-ins: switched off while a learner's code runs, with a clear message.

Names are dotted paths ("torch.cdist", "torch.Tensor.softmax", "torch.nn.Conv2d",
"numpy.broadcast_shapes", "minidl.broadcasting.softmax"), an ATen operator ("aten::_softmax"),
or a path ending in "*" for every attribute with that prefix ("torch.rnn_tanh*"). Three
mechanisms cover the ways Python can reach a function:

- a ``TorchFunctionMode`` sees every call of PyTorch's public API, including Tensor methods,
  ``torch.ops.aten.*`` and aliases bound earlier (``from torch import cdist as d``), and
  refuses the forbidden ones by identity;
- a plain Python function (``torch.broadcast_shapes``, numpy's helpers, minidl's references,
  a module class's ``forward``) has its code object swapped, so aliases reach the refusal too;
- anything else (a C-level function outside PyTorch) is replaced on its module.

Two more guards close the routes around those: the torch-function mode also refuses C
built-ins by name, so a forbidden built-in is refused under its other names in ``torch._C``
(``torch._C._nn.one_hot`` for ``F.one_hot``, ``torch.ops.aten.one_hot``) and a named ATen
operator through its private bindings (``torch._C._nn.im2col``, ``torch._softmax``,
``torch._VF.cdist``); and code equal to a refused Python function's, which is what the
reference becomes when it is imported again under another name or reloaded, is refused when
it is executed inside the sandbox (an audit hook on ``exec``), and found by ``copies_of`` in
a learner's definition (``types.FunctionType(ref.__code__, ...)`` built in the notebook).

A refusal raises ``ForbiddenCall`` and is also recorded, so learner code that swallows the
exception with a broad ``except`` is still caught.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib
import sys
import types
from collections.abc import Iterable
from typing import Any

from torch.overrides import TorchFunctionMode

from .i18n import _


class ForbiddenCall(Exception):
    """Raised when learner code calls a built-in the exercise asks them to build themselves."""

    def __init__(self, name: str):
        super().__init__(_("{name} is off-limits in this exercise: build it yourself from simpler operations").format(
            name=name))
        self.name = name


# What the active sandboxes have refused; read and cleared by ``Sandbox.__exit__``.
_hits: list[str] = []
# The sandbox of the case being graded (see ``armed`` and ``learner_code``).
_armed: list[Sandbox] = []


def refuse(name: str) -> None:
    _hits.append(name)
    raise ForbiddenCall(name)


def resolve(name: str) -> list[tuple[str, Any, Any, str]]:
    """(name, owner, object, attribute) for a dotted name; several for a trailing '*'."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:cut]))
            break
        except ImportError:
            continue
    else:
        return []
    rest = parts[cut:]
    if not rest:
        return []
    for part in rest[:-1]:
        owner = getattr(owner, part, None)
        if owner is None:
            return []
    last = rest[-1]
    attrs = fnmatch.filter(dir(owner), last) if "*" in last else [last]
    found = []
    for attr in attrs:
        obj = getattr(owner, attr, None)
        if obj is not None:
            label = name if "*" not in last else ".".join(parts[:-1] + [attr])
            found.append((label, owner, obj, attr))
    return found


def _refusing_code(name: str) -> types.CodeType:
    """A code object that refuses; it runs with the target's globals, so it imports what it needs."""
    source = (
        "def refused(*args, **kwargs):\n"
        f"    __import__('autograder.sandbox').sandbox.refuse({name!r})\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<forbidden {name}>", "exec"), namespace)
    return namespace["refused"].__code__


class _Refuse(TorchFunctionMode):
    """Refuses forbidden PyTorch functions by identity, C built-ins also by name, ATen ops by name."""

    def __init__(self, by_id: dict[int, str], ops: set[str], builtins: dict[str, str]):
        super().__init__()
        self.by_id, self.ops, self.builtins = by_id, ops, dict(builtins)
        for op in ops:  # ATen operators through their C bindings: torch._C._nn.im2col, torch._softmax
            bare = op.split("::", 1)[1].split(".")[0]
            self.builtins.setdefault(bare, f"torch.ops.aten.{bare}")

    def __torch_function__(self, func, types_, args=(), kwargs=None):
        name = self.by_id.get(id(func))
        if name is None and isinstance(func, types.BuiltinFunctionType | types.MethodDescriptorType):
            name = self.builtins.get(getattr(func, "__name__", ""))  # torch._C._nn.one_hot and kin
        if name is None:
            op = getattr(func, "_qualified_op_name", None) or getattr(getattr(func, "_schema", None), "name", None)
            if op in self.ops:
                name = f"torch.ops.{op.replace('::', '.')}"
            elif op and op.startswith("aten::") and op[6:] in self.builtins:
                name = self.builtins[op[6:]]
        if name is not None:
            refuse(name)
        return func(*args, **(kwargs or {}))


_guarded: list[frozenset] = []  # code objects refused by value, one set per active sandbox


def nested_codes(code: types.CodeType):
    """``code`` and every code object defined inside it (functions, classes, lambdas)."""
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from nested_codes(const)


def _audit(event: str, args: tuple) -> None:
    """While a sandbox is active: refuse executing a module that defines the reference again."""
    if _guarded and event == "exec" and isinstance(args[0], types.CodeType):
        for code in nested_codes(args[0]):
            if code in _guarded[-1]:
                refuse(f"{code.co_name} (minidl's reference under another name)")


def copies_of(obj: Any, codes: frozenset, depth: int = 0, seen: set | None = None) -> list[str]:
    """Names of the functions reachable from a learner's definition ``obj`` (its code, closures,
    methods, the notebook globals it uses) whose code equals one of ``codes``."""
    seen = set() if seen is None else seen
    if depth > 8 or id(obj) in seen:
        return []
    seen.add(id(obj))
    found, inner = [], []
    if isinstance(obj, types.FunctionType):
        found += [c.co_name for c in nested_codes(obj.__code__) if c in codes]
        inner = [cell.cell_contents for cell in obj.__closure__ or () if _filled(cell)]
        if obj.__globals__.get("__name__") in ("__main__", None):  # the notebook's, not a library's
            inner += [obj.__globals__.get(name) for name in obj.__code__.co_names]
    elif isinstance(obj, type):
        inner = list(vars(obj).values())
    elif isinstance(obj, staticmethod | classmethod):
        inner = [obj.__func__]
    elif isinstance(obj, property):
        inner = [obj.fget, obj.fset, obj.fdel]
    elif isinstance(obj, list | tuple | set | frozenset):
        inner = list(obj)
    elif isinstance(obj, dict):
        inner = list(obj.values())
    for item in inner:
        found += copies_of(item, codes, depth + 1, seen)
    return found


def _filled(cell) -> bool:
    try:
        cell.cell_contents
        return True
    except ValueError:
        return False


def functions_of(obj: Any) -> list:
    """What is swapped to refuse ``obj``: a function itself; a module class's ``forward``; every
    method of one of minidl's classes, so that its subclasses (lesson 07's AdamW is lesson 04's
    Adam with another ``decay``) do not bring the reference back."""
    if not isinstance(obj, type):
        return [obj]
    if obj.__module__.split(".")[0] == "minidl":
        return list(vars(obj).values())
    return [obj.__dict__.get("forward")]


class Sandbox:
    """``with Sandbox(names): learner_fn(...)`` refuses the named built-ins inside the block."""

    def __init__(self, names: Iterable[str]):
        self.names = tuple(names)
        self.ops = {n for n in self.names if "::" in n}
        self.targets = [t for n in self.names if "::" not in n for t in resolve(n)]
        self.by_id = {id(obj): label for label, _, obj, _ in self.targets}
        self.builtins = {obj.__name__: label for label, _, obj, _ in self.targets
                         if isinstance(obj, types.BuiltinFunctionType | types.MethodDescriptorType)
                         and getattr(obj, "__name__", None)}
        self.hits: list[str] = []
        self._undo: list[tuple] = []

    def __enter__(self) -> Sandbox:
        _hits.clear()
        codes = set()
        for label, owner, obj, attr in self.targets:
            swapped = False
            for func in functions_of(obj):
                if isinstance(func, staticmethod | classmethod):
                    func = func.__func__  # an autograd.Function's forward: refuse inside Function.apply
                while isinstance(func, types.FunctionType) and func.__code__.co_freevars and hasattr(func, "__wrapped__"):
                    func = func.__wrapped__  # a decorated function: refuse in the function it wraps
                if isinstance(func, types.FunctionType) and not func.__code__.co_freevars and func.__code__ not in codes:
                    codes.add(func.__code__)
                    self._undo.append(("code", func, func.__code__))
                    func.__code__ = _refusing_code(label)
                    swapped = True
            if swapped:
                continue
            if isinstance(owner, types.ModuleType) and not isinstance(obj, types.BuiltinFunctionType | type):
                continue  # reached through the torch-function mode below
            if isinstance(owner, types.ModuleType):
                self._undo.append(("attr", owner, attr, obj))
                setattr(owner, attr, _refuser(label))
        self._mode = _Refuse(self.by_id, self.ops, self.builtins)
        self._mode.__enter__()
        self.codes = frozenset(codes)
        self._guard = bool(codes)
        if self._guard:
            _install_audit()
            _guarded.append(self.codes)
        return self

    def __exit__(self, *exc) -> None:
        if self._guard:
            _guarded.pop()
        self._mode.__exit__(*exc)
        for entry in reversed(self._undo):
            if entry[0] == "code":
                entry[1].__code__ = entry[2]
            else:
                setattr(entry[1], entry[2], entry[3])
        self._undo.clear()
        self.hits = list(dict.fromkeys(self.hits + _hits))
        _hits.clear()


_audit_installed: list[bool] = []


def _install_audit() -> None:
    """Add the audit hook once per process (audit hooks cannot be removed; it is idle outside sandboxes)."""
    if not _audit_installed:
        sys.addaudithook(_audit)
        _audit_installed.append(True)


@contextlib.contextmanager
def armed(sandbox: Sandbox):
    """Make ``sandbox`` the one ``learner_code()`` enters while a case is graded."""
    _armed.append(sandbox)
    try:
        yield sandbox
    finally:
        _armed.pop()


@contextlib.contextmanager
def learner_code():
    """Probes wrap every call into learner code in this (a function call, a constructor, a method).

    While the runner grades a case, the forbidden built-ins are off inside the block; in the
    oracle, where the reference runs, it does nothing. The probe's own work (autograd on the
    output, gradcheck) stays outside the block and may use anything.
    """
    if not _armed:
        yield
        return
    with _armed[-1]:
        yield


def _refuser(name: str):
    def refused(*args: Any, **kwargs: Any) -> None:
        refuse(name)

    return refused

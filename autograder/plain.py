"""Plain trees: what crosses from learner code to the comparison, and how two are compared.

Whatever a learner's function returns is turned into a tree of plain data (dicts, lists,
strings, numbers and plain ``torch.Tensor`` values on the CPU) before it is compared. Types are
read with ``type()``, never ``isinstance`` or ``==`` on the learner's objects, so a tensor
subclass, an object whose ``__eq__`` is always True or one that lies about its ``__class__``
is reported as what it is. The same conversion is applied to the reference's output, and a
tree loads with ``torch.load(weights_only=True)``, so it can cross between processes safely.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .i18n import N_, _

SCALARS = {int: "int", float: "float", bool: "bool", str: "str", type(None): "none"}


def qualname(t: type) -> str:
    module = getattr(t, "__module__", "") or ""
    name = getattr(t, "__qualname__", getattr(t, "__name__", "?"))
    return name if module in ("builtins", "") else f"{module}.{name}"


def plain(obj: Any, depth: int = 0) -> dict:
    """Convert ``obj`` to a plain tree (see the module docstring). Never calls obj's methods."""
    t = type(obj)
    if depth > 20:
        return {"kind": "object", "type": qualname(t), "repr": "(nested too deeply)"}
    if t is torch.Tensor or t is torch.nn.Parameter:
        return plain_tensor(obj)
    if t in SCALARS:
        return {"kind": SCALARS[t], "value": obj}
    if t is torch.Size or t is tuple or t is list:
        items = [plain(v, depth + 1) for v in (tuple.__iter__(obj) if t is not list else list.__iter__(obj))]
        return {"kind": "seq", "type": "tuple" if t is torch.Size else t.__name__, "items": items}
    if tuple in t.__bases__ and isinstance(t.__dict__.get("_fields"), tuple):  # a namedtuple
        items = [plain(tuple.__getitem__(obj, i), depth + 1) for i in range(tuple.__len__(obj))]
        return {"kind": "seq", "type": qualname(t), "items": items}
    if t is dict or (dict in t.__mro__ and t.__module__ == "collections"):
        pairs = list(dict.items(obj))
        return {
            "kind": "dict",
            "type": qualname(t),
            "keys": [plain(k, depth + 1) for k, _ in pairs],
            "items": [plain(v, depth + 1) for _, v in pairs],
        }
    if t is torch.dtype or t is torch.device:
        return {"kind": "str", "value": f"{t.__name__}:{str.__str__(str(obj))}"}
    return {"kind": "object", "type": qualname(t), "repr": ""}


def plain_tensor(t: torch.Tensor) -> dict:
    data = None
    if t.device.type != "meta":
        data = t.detach().to("cpu", copy=True)
    return {
        "kind": "tensor",
        "shape": list(t.shape),
        "dtype": str(t.dtype).replace("torch.", ""),
        "device": str(t.device),
        "data": data,
    }


def raised(exc: BaseException, where: str = "") -> dict:
    """The plain record of an exception raised by learner code."""
    return {
        "kind": "raised",
        "type": type(exc).__name__,
        "mro": [c.__name__ for c in type(exc).__mro__],
        "message": safe_str(exc)[:500],
        "where": where,
    }


def safe_str(obj: Any) -> str:
    try:
        return str(obj)
    except Exception:  # a learner's exception whose __str__ fails
        return f"<{type(obj).__name__}>"


def describe(node: dict) -> str:
    """A short description of a plain tree: 'float32[3, 4] on cpu', 'tuple of 3', 'int 7'."""
    kind = node["kind"]
    if kind == "tensor":
        return _("{dtype}{shape} on {device}").format(dtype=node["dtype"], shape=node["shape"], device=node["device"])
    if kind == "seq":
        return _("{type} of {n}").format(type=node["type"], n=len(node["items"]))
    if kind == "dict":
        return _("{type} with {n} keys").format(type=node["type"], n=len(node["items"]))
    if kind == "raised":
        return f"{node['type']}: {node['message']}"
    if kind == "object":
        return _("an object of type {type}").format(type=node["type"])
    if kind == "none":
        return "None"
    return f"{kind} {node['value']!r}"


@dataclass
class Mismatch:
    """Why a got tree differs from the expected one. ``symptom`` names the kind of mistake."""

    symptom: str
    message: str
    path: str = ""
    details: dict = field(default_factory=dict)


def first_index(mask: torch.Tensor) -> tuple[int, ...]:
    """The index of the first True element of ``mask``, as a tuple of ints."""
    return tuple(int(i) for i in mask.nonzero()[0])


def compare(expected: dict, got: dict, tolerance, path: str = "output") -> Mismatch | None:
    """The first difference between two plain trees, or None. ``tolerance(dtype) -> (rtol, atol)``."""
    ek, gk = expected["kind"], got["kind"]
    if ek == "raised":
        if gk != "raised":
            return Mismatch("no_raise", _("expected {error} to be raised, but {path} is {got}").format(
                error=expected["type"], path=path, got=describe(got)), path)
        if expected["type"] not in got["mro"]:
            return Mismatch("raised", _("expected {error}, but your code raised {got}").format(
                error=expected["type"], got=describe(got)), path)
        return None
    if gk == "raised":
        return Mismatch("raised", _("your code raised {got}").format(got=describe(got)), path,
                        {"where": got.get("where", "")})
    if ek != gk or (ek in ("seq", "dict") and expected["type"] != got["type"]):
        return Mismatch("type", should_be(path, expected, got), path)
    if ek == "tensor":
        return compare_tensors(expected, got, tolerance, path)
    if ek in ("seq", "dict"):
        if len(expected["items"]) != len(got["items"]):
            return Mismatch("shape", should_be(path, expected, got), path)
        if ek == "dict":
            ekeys = [k.get("value") for k in expected["keys"]]
            gkeys = [k.get("value") for k in got["keys"]]
            if ekeys != gkeys:
                return Mismatch("type", _("{path} should have keys {expected}, but has {got}").format(
                    path=path, expected=ekeys, got=gkeys), path)
        labels = [repr(shown_key(k.get("value"))) for k in expected["keys"]] if ek == "dict" else range(len(expected["items"]))
        for label, e, g in zip(labels, expected["items"], got["items"]):
            found = compare(e, g, tolerance, f"{path}[{label}]")
            if found:
                return found
        return None
    if ek == "float":
        rtol, atol = tolerance(torch.float64 if expected.get("exact") else torch.float32)
        e, g = expected["value"], got["value"]
        if not (abs(e - g) <= atol + rtol * abs(e) or (e != e and g != g)):
            return Mismatch("values", _("{path} should be {expected}, but it is {got}").format(
                path=path, expected=repr(e), got=repr(g)), path)
        return None
    if ek in ("int", "bool", "str", "none") and expected["value"] != got["value"]:
        return Mismatch("values", _("{path} should be {expected}, but it is {got}").format(
            path=path, expected=repr(expected["value"]), got=repr(got["value"])), path)
    return None


def shown_key(key: Any) -> Any:
    """A result's key as shown in a mismatch's path: a probe's worded label ("model in eval mode ...")
    in the language in use, any other key as it is."""
    return _(key) if isinstance(key, str) else key


def should_be(path: str, expected: dict, got: dict) -> str:
    return _("{path} should be {expected}, but it is {got}").format(
        path=path, expected=describe(expected), got=describe(got))


# A tensor's attribute that differs, in words ("output has dtype float64, expected float32")
WRONG_ATTRIBUTE = {
    "shape": N_("{path} has shape {got}, expected {expected}"),
    "dtype": N_("{path} has dtype {got}, expected {expected}"),
    "device": N_("{path} has device {got}, expected {expected}"),
}


def compare_tensors(expected: dict, got: dict, tolerance, path: str) -> Mismatch | None:
    for attr in ("shape", "dtype", "device"):
        if expected[attr] != got[attr]:
            return Mismatch(
                attr,
                _(WRONG_ATTRIBUTE[attr]).format(path=path, got=got[attr], expected=expected[attr]),
                path,
                {"expected": describe(expected), "got": describe(got)},
            )
    e, g = expected["data"], got["data"]
    if e is None or g is None or e.numel() == 0:
        return None
    if not e.is_floating_point() and not e.is_complex():
        wrong = e != g
        if wrong.any():
            index = first_index(wrong)
            return Mismatch(
                "values",
                _("{path} differs in {wrong} of {n} elements; first at index {index}: expected {expected}, "
                  "got {got}").format(path=path, wrong=int(wrong.sum()), n=e.numel(), index=list(index),
                                      expected=e[index].item(), got=g[index].item()),
                path,
            )
        return None
    rtol, atol = tolerance(getattr(torch, expected["dtype"]))
    e64, g64 = e.double(), g.double()
    blown = e64.isfinite() & ~g64.isfinite()
    if blown.any():
        index = first_index(blown)
        return Mismatch(
            "nonfinite",
            _("{path} has {blown} NaN/inf value(s) where the expected values are finite; first at index {index}: "
              "expected {expected:.6g}, got {got}").format(path=path, blown=int(blown.sum()), index=list(index),
                                                          expected=e64[index].item(), got=g64[index].item()),
            path,
        )
    close = torch.isclose(g64, e64, rtol=rtol, atol=atol, equal_nan=True)
    if close.all():
        return None
    err = (g64 - e64).abs().nan_to_num(float("inf"))
    err[close] = 0
    index = first_index(err == err.max())
    rel = err[index].item() / max(abs(e64[index].item()), 1e-300)
    return Mismatch(
        "values",
        _("{path} differs in {wrong} of {n} elements; largest error at index {index}: expected {expected:.6g}, "
          "got {got:.6g} (abs error {abs_error:.3g}, rel error {rel_error:.3g}; tolerance rtol={rtol:g}, "
          "atol={atol:g})").format(path=path, wrong=int((~close).sum()), n=e.numel(), index=list(index),
                                   expected=e64[index].item(), got=g64[index].item(), abs_error=err[index].item(),
                                   rel_error=rel, rtol=rtol, atol=atol),
        path,
        {"max_abs": err[index].item(), "max_rel": rel, "where": list(index)},
    )

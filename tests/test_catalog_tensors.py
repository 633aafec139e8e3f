"""Lesson 01's checks: correct alternatives (loops) pass, common mistakes fail with their symptom."""

import copy

import torch

from autograder import check


def strides_loop(shape):
    strides = []
    for d in range(len(shape)):
        s = 1
        for n in shape[d + 1:]:
            s *= max(n, 1)
        strides.append(s)
    return tuple(strides)


def strides_list(shape):
    return list(strides_loop(shape))


def strides_ignoring_zero(shape):
    out, step = [], 1
    for n in reversed(shape):
        out.append(step)
        step *= n
    return tuple(reversed(out))


def strides_by_reading(shape):
    return torch.empty(shape).stride()


def one_hot_loop(labels, num_classes):
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError("label out of range")
    out = torch.zeros(labels.numel(), num_classes, device=labels.device)
    for i, k in enumerate(labels.reshape(-1).tolist()):
        out[i, k] = 1.0
    return out.reshape(*labels.shape, num_classes)


def one_hot_int64(labels, num_classes):
    return (labels.unsqueeze(-1) == torch.arange(num_classes)).long()


def one_hot_unchecked(labels, num_classes):
    return (labels.unsqueeze(-1) == torch.arange(num_classes)).float()


def one_hot_builtin(labels, num_classes):
    return torch.nn.functional.one_hot(labels, num_classes).float()


def to_device_recursive(obj, device):
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        moved = copy.copy(obj)
        moved.update((k, to_device_recursive(v, device)) for k, v in obj.items())
        return moved
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*[to_device_recursive(v, device) for v in obj])
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device_recursive(v, device) for v in obj)
    return obj


def to_device_rebuilding_dicts(obj, device):
    """The type(obj)(pairs) recipe: right for dict and OrderedDict, a TypeError for a defaultdict."""
    if isinstance(obj, dict):
        return type(obj)((k, to_device_rebuilding_dicts(v, device)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(to_device_rebuilding_dicts(v, device) for v in obj)
    return to_device_recursive(obj, device)


def to_device_flat(obj, device):
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, (list, tuple)):
        return [v.to(device) if isinstance(v, torch.Tensor) else v for v in obj]
    return obj


def patchify_loop(images, patch):
    B, C, H, W = images.shape
    if H % patch or W % patch:
        raise ValueError("patch must divide H and W")
    rows = []
    for i in range(0, H, patch):
        for j in range(0, W, patch):
            rows.append(images[:, :, i:i + patch, j:j + patch].reshape(B, -1))
    return torch.stack(rows, dim=1)


def patchify_channel_last(images, patch):
    B, C, H, W = images.shape
    if H % patch or W % patch:
        raise ValueError("patch must divide H and W")
    x = images.reshape(B, C, H // patch, patch, W // patch, patch).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(B, -1, C * patch * patch)


def test_contiguous_strides():
    assert check("tensors.contiguous_strides", strides_loop).passed
    assert "tuple" in check("tensors.contiguous_strides", strides_list).failures[0].hint
    wrong = check("tensors.contiguous_strides", strides_ignoring_zero)
    assert not wrong.passed and wrong.failures[0].group == "edge cases" and "size-0" in wrong.failures[0].hint
    assert "off-limits" in check("tensors.contiguous_strides", strides_by_reading).message


def test_one_hot():
    assert check("tensors.one_hot", one_hot_loop).passed
    assert check("tensors.one_hot", one_hot_int64).failures[0].symptom == "dtype"
    unchecked = check("tensors.one_hot", one_hot_unchecked)
    assert unchecked.failures[0].group == "invalid labels" and "ValueError" in unchecked.failures[0].hint
    assert check("tensors.one_hot", one_hot_builtin).status == "forbidden"


def test_to_device():
    assert check("tensors.to_device", to_device_recursive).passed
    flat = check("tensors.to_device", to_device_flat)
    assert not flat.passed and flat.score < flat.max_score
    rebuilt = check("tensors.to_device", to_device_rebuilding_dicts)
    assert not rebuilt.passed and rebuilt.failures[0].group == "defaultdict" and "copy.copy" in rebuilt.failures[0].hint

    def factory_lost(obj, device):                     # type(obj)() then filled: a defaultdict without its factory
        if isinstance(obj, dict):
            moved = type(obj)()
            moved.update((k, to_device_recursive(v, device)) for k, v in obj.items())
            return moved
        return to_device_recursive(obj, device)

    lost = check("tensors.to_device", factory_lost)
    assert not lost.passed and lost.failures[0].group == "defaultdict"


def test_patchify():
    assert check("tensors.patchify", patchify_loop).passed
    wrong = check("tensors.patchify", patchify_channel_last)
    assert wrong.failures[0].symptom == "values" and "permute" in wrong.failures[0].hint

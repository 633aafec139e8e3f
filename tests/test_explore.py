"""minidl.explore: an explorer draws inside its own output area, below its controls, and redraws there."""

import pytest

widgets = pytest.importorskip("ipywidgets")

from minidl.explore import explorer  # noqa: E402


def test_draws_the_default_view_once_below_the_controls_and_redraws_on_change():
    calls = []
    shape = widgets.Text(value="2, 3", description="permutation", continuous_update=False)
    steps = widgets.IntSlider(value=3, min=1, max=9, description="momentum")
    box = explorer(lambda shape, steps: calls.append((shape, steps)), shape=shape, steps=steps)
    assert calls == [("2, 3", 3)]                                        # the default view, at once
    row, out = box.children
    assert isinstance(out, widgets.Output) and list(row.children) == [shape, steps]
    assert shape.style.description_width == steps.style.description_width == "initial"   # labels in full
    steps.value = 5
    shape.value = "4"
    assert calls == [("2, 3", 3), ("2, 3", 5), ("4", 5)]


def test_an_error_in_the_default_view_fails_the_cell(monkeypatch):
    """In a kernel, an Output shows an error raised inside it and swallows it: the explorer must not."""
    from ipywidgets.widgets import widget_output

    class Kernel:
        def showtraceback(self, *args, **kwargs):
            pass

    monkeypatch.setattr(widget_output, "get_ipython", lambda: Kernel())

    def broken(n):
        raise ValueError("cannot draw")

    with pytest.raises(ValueError, match="cannot draw"):
        explorer(broken, n=widgets.IntSlider(value=1))

"""The lessons' interactive explorers: controls on top, the picture below them, in one widget.

``explorer(fn, **controls)`` shows ``controls`` (ipywidgets) above an output area of its own,
draws ``fn(**values)`` there at once (the default view), and redraws it there, replacing the
old picture, whenever a control changes. Nothing waits for a browser: run headless, the
default view is drawn and the cell ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def explorer(fn: Callable[..., Any], **controls: Any):
    """A VBox: the controls (labels shown in full), then ``fn``'s drawing for their values.

    ``controls`` maps each keyword argument of ``fn`` to the widget that sets it; a text box
    with ``continuous_update=False`` redraws on Enter, a slider as it moves.
    """
    import ipywidgets as widgets

    out = widgets.Output()

    def draw(change: Any = None) -> Exception | None:
        """Redraw inside ``out``. A redraw's error is shown there; the default view's is returned."""
        with out:
            out.clear_output(wait=True)
            try:
                fn(**{name: control.value for name, control in controls.items()})
            except Exception as err:  # noqa: BLE001
                if change is not None:
                    raise                                 # the Output shows the traceback
                return err
        return None

    for control in controls.values():
        control.style.description_width = "initial"      # "permutation", not "permutati..."
        control.observe(draw, names="value")
    error = draw()
    if error is not None:          # an Output would swallow it: the cell fails, as a headless run must see
        raise error
    row = widgets.HBox(list(controls.values()), layout=widgets.Layout(flex_flow="row wrap"))
    return widgets.VBox([row, out])

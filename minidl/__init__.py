"""minidl: the reference implementations of everything the course's learners build.

One module per lesson topic. Every function is written to be read: typed, short, with the
shapes in its docstring and the mathematics in the lesson's notation.
"""

__version__ = "0.1.0"

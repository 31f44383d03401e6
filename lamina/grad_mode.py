"""Whether operations record the graph. Read as ``grad_mode.enabled`` on the hot path."""
import functools

enabled = True


class _GradMode:
    """Context manager and decorator that sets grad recording on or off."""

    __slots__ = ("mode", "prev")

    def __init__(self, mode):
        self.mode = mode
        self.prev = None

    def __enter__(self):
        global enabled
        self.prev = enabled
        enabled = self.mode
        return self

    def __exit__(self, *exc):
        global enabled
        enabled = self.prev
        return False

    def __call__(self, fn):
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with _GradMode(mode):
                return fn(*args, **kwargs)

        return wrapper


def no_grad(fn=None):
    """``with lamina.no_grad():`` runs operations without recording them; also a decorator,
    with or without parentheses (``@lamina.no_grad`` / ``@lamina.no_grad()``)."""
    return _GradMode(False) if fn is None else _GradMode(False)(fn)


def enable_grad(fn=None):
    """Turn recording back on (inside ``no_grad``); a context manager or decorator."""
    return _GradMode(True) if fn is None else _GradMode(True)(fn)


class set_grad_enabled(_GradMode):
    """``set_grad_enabled(False)`` switches recording off at once, as in PyTorch; used in a
    ``with`` it restores the previous mode on exit."""

    __slots__ = ()

    def __init__(self, mode):
        global enabled
        super().__init__(bool(mode))
        self.prev = enabled
        enabled = self.mode

    def __enter__(self):
        return self

    def __call__(self, fn):
        # as a decorator the mode applies only while fn runs: undo the immediate switch
        global enabled
        enabled = self.prev
        return _GradMode(self.mode)(fn)


def is_grad_enabled():
    return enabled

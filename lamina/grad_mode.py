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


def no_grad():
    """``with lamina.no_grad():`` runs operations without recording them."""
    return _GradMode(False)


def enable_grad():
    return _GradMode(True)


def set_grad_enabled(mode):
    return _GradMode(bool(mode))


def is_grad_enabled():
    return enabled

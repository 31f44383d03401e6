"""Small generated Python programs and what they print, for learning to execute
(Zaremba & Sutskever 2014; the notes' examples).

A program is built from a number by ``nesting`` operations, each drawn from

- ``+`` / ``-``: the expression becomes ``(e+n)``, ``(n+e)`` or ``(e-n)``;
- assignment: a line ``v=e`` is written and the expression becomes ``v``;
- ``if``-``else``: ``(e if n<m else k)`` (the comparison of two constants decides);
- ``for`` loop: the lines ``v=e`` and ``for x in range(k):v+=n`` (or ``-=``) are written
  and the expression becomes ``v``, with a one-digit loop count k;

and ends with ``print(e)``. Every constant n, m, k (except the loop count) has exactly
``length`` digits. The generator tracks the value as it builds the program (no ``exec``),
so the target is the printed integer, e.g.::

    j=86
    for x in range(3):j+=21
    print((j-47))          ->  102

The tests check the tracked value against Python's own execution of the program.
"""

OPERATIONS = ("add", "sub", "assign", "if", "for")
VARIABLES = "abcdefghijklmnopqrstuvwyz"       # 'x' is the loop variable
#: every character a program or an output can contain
ALPHABET = sorted(set("0123456789+-=()<: \n" + VARIABLES + "x" + "print range if else for in"))


def _number(length, rng):
    """A random integer with exactly ``length`` digits (1 digit: 0..9)."""
    if length == 1:
        return int(rng.integers(0, 10))
    return int(rng.integers(10 ** (length - 1), 10 ** length))


def generate_program(length, nesting, rng, operations=OPERATIONS):
    """One program: (source text, printed output as a string).

    ``length``: the number of digits of the constants; ``nesting``: the number of
    operations composed (≥ 1). ``rng``: a NumPy Generator.
    """
    if length < 1 or nesting < 1:
        raise ValueError(f"generate_program: length and nesting must be >= 1, got "
                         f"length={length}, nesting={nesting}")
    bad = [op for op in operations if op not in OPERATIONS]
    if bad or not operations:
        raise ValueError(f"generate_program: unknown operations {bad}; choose from "
                         f"{OPERATIONS}")
    lines = []
    free = list(VARIABLES)
    rng.shuffle(free)
    value = _number(length, rng)
    expr = str(value)
    for _ in range(nesting):
        op = operations[int(rng.integers(len(operations)))]
        n = _number(length, rng)
        if op == "add":
            if rng.random() < 0.5:
                expr, value = f"({expr}+{n})", value + n
            else:
                expr, value = f"({n}+{expr})", n + value
        elif op == "sub":
            expr, value = f"({expr}-{n})", value - n
        elif op == "assign":
            v = free.pop()
            lines.append(f"{v}={expr}")
            expr = v
        elif op == "if":
            m, k = _number(length, rng), _number(length, rng)
            expr, value = f"({expr} if {n}<{m} else {k})", (value if n < m else k)
        else:  # for
            v = free.pop()
            count = int(rng.integers(1, 10))
            sign = "+" if rng.random() < 0.5 else "-"
            lines.append(f"{v}={expr}")
            lines.append(f"for x in range({count}):{v}{sign}={n}")
            value = value + count * n if sign == "+" else value - count * n
            expr = v
    lines.append(f"print({expr})")
    return "\n".join(lines), str(value)


def difficulty_levels(max_length, max_nesting):
    """All (length, nesting) pairs up to the target in curriculum order: by length,
    then by nesting."""
    return [(a, b) for a in range(1, max_length + 1) for b in range(1, max_nesting + 1)]


CURRICULA = ("none", "naive", "mixed", "combined")


def curriculum_level(strategy, max_length, max_nesting, progress, rng):
    """The (length, nesting) of one training example under a curriculum strategy
    (Zaremba & Sutskever's names), ``progress`` in [0, 1] the fraction of training done:

    - 'none': always the target (max_length, max_nesting);
    - 'naive': the levels of :func:`difficulty_levels` in turn, moving to the next at
      equal steps of progress over the first 80% of training, then the target;
    - 'mixed': length uniform in 1..max_length and nesting uniform in 1..max_nesting;
    - 'combined': half the examples 'naive', half 'mixed'.
    """
    if strategy not in CURRICULA:
        raise ValueError(f"curriculum must be one of {CURRICULA}, got {strategy!r}")
    if strategy == "combined":
        strategy = "naive" if rng.random() < 0.5 else "mixed"
    if strategy == "none":
        return max_length, max_nesting
    if strategy == "mixed":
        return int(rng.integers(1, max_length + 1)), int(rng.integers(1, max_nesting + 1))
    levels = difficulty_levels(max_length, max_nesting)
    i = min(int(progress / 0.8 * len(levels)), len(levels) - 1)
    return levels[i]

"""The ``lamina`` command: ``lamina train NAME [options]``, ``lamina list``."""
import importlib
import sys

from .zoo import RECIPES


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    usage = "usage: lamina train NAME [--quick] [options]   |   lamina list"
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        print("recipes: " + ", ".join(RECIPES))
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "list":
        for name, mod in RECIPES.items():
            doc = importlib.import_module(mod).__doc__.strip().split("\n")[0]
            print(f"{name:16s} {doc}")
        return 0
    if cmd == "train":
        if not rest or rest[0] not in RECIPES:
            got = rest[0] if rest else "nothing"
            print(f"lamina train: unknown recipe {got!r}; choose one of: "
                  + ", ".join(RECIPES), file=sys.stderr)
            return 2
        importlib.import_module(RECIPES[rest[0]]).main(rest[1:])
        return 0
    print(f"lamina: unknown command {cmd!r}\n{usage}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

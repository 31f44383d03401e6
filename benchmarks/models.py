"""Benchmark networks, written once for both frameworks: ``M`` is ``torch.nn`` or
``lamina.nn`` (same class names and arguments)."""


def build_lenet(M):
    """LeNet-5 for 1x28x28 inputs (ReLU and max pooling)."""
    return M.Sequential(M.Conv2d(1, 6, 5, padding=2), M.ReLU(), M.MaxPool2d(2),
                        M.Conv2d(6, 16, 5), M.ReLU(), M.MaxPool2d(2), M.Flatten(),
                        M.Linear(400, 120), M.ReLU(), M.Linear(120, 84), M.ReLU(),
                        M.Linear(84, 10))


def build_wide(M):
    """conv32-BN-ReLU x2, pool, conv64-BN-ReLU x2, pool, FC 3136->256, dropout, FC 10."""
    def block(cin, cout):
        return [M.Conv2d(cin, cout, 3, padding=1), M.BatchNorm2d(cout), M.ReLU()]
    return M.Sequential(*block(1, 32), *block(32, 32), M.MaxPool2d(2),
                        *block(32, 64), *block(64, 64), M.MaxPool2d(2), M.Flatten(),
                        M.Linear(3136, 256), M.ReLU(), M.Dropout(0.5), M.Linear(256, 10))


IMAGE_MODELS = {"lenet": build_lenet, "wide": build_wide}

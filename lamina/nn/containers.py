"""Containers: Sequential, ModuleList, ModuleDict."""
from collections import OrderedDict

from .module import Module


class Sequential(Module):
    """Modules applied in order. ``Sequential(a, b)``, ``Sequential(OrderedDict(...))``,
    or Torch7's ``Sequential().add(a).add(b)``; ``net[0]``, ``net[1:]``, ``len(net)``."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)

    def add(self, module):
        """Append a module (Torch7 style); returns self so calls chain."""
        self.add_module(str(len(self._module_names)), module)
        return self

    append = add

    def forward(self, x):
        for name in self._module_names:
            x = self.__dict__[name](x)
        return x

    def __getitem__(self, idx):
        names = list(self._module_names)
        if isinstance(idx, slice):
            return Sequential(OrderedDict((n, self.__dict__[n]) for n in names[idx]))
        try:
            return self.__dict__[names[idx]]
        except IndexError:
            raise IndexError(f"Sequential: index {idx} is out of range for {len(names)} "
                             f"modules") from None

    def __len__(self):
        return len(self._module_names)

    def __iter__(self):
        return iter([self.__dict__[n] for n in self._module_names])


class ModuleList(Module):
    """A list of modules whose parameters are registered."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module):
        self.add_module(str(len(self._module_names)), module)
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def __getitem__(self, idx):
        names = list(self._module_names)
        if isinstance(idx, slice):
            return ModuleList([self.__dict__[n] for n in names[idx]])
        try:
            return self.__dict__[names[idx]]
        except IndexError:
            raise IndexError(f"ModuleList: index {idx} is out of range for {len(names)} "
                             f"modules") from None

    def __setitem__(self, idx, module):
        names = list(self._module_names)
        setattr(self, names[idx], module)

    def __len__(self):
        return len(self._module_names)

    def __iter__(self):
        return iter([self.__dict__[n] for n in self._module_names])


class ModuleDict(Module):
    """A dict of modules whose parameters are registered."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def update(self, modules):
        items = modules.items() if hasattr(modules, "items") else modules
        for k, m in items:
            self[k] = m

    def __getitem__(self, key):
        if key not in self._module_names:
            raise KeyError(key)
        return self.__dict__[key]

    def __setitem__(self, key, module):
        self.add_module(key, module)

    def __contains__(self, key):
        return key in self._module_names

    def __len__(self):
        return len(self._module_names)

    def __iter__(self):
        return iter(list(self._module_names))

    def keys(self):
        return list(self._module_names)

    def values(self):
        return [self.__dict__[k] for k in self._module_names]

    def items(self):
        return [(k, self.__dict__[k]) for k in self._module_names]

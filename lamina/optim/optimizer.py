"""Optimizer base: parameter groups, each backed by one flat buffer.

At construction every group's parameters are bound to contiguous storage
(:func:`lamina.nn.utils.flatten_parameters`), so ``step`` runs a few vectorized
statements per group instead of a Python loop over parameters. Note: with flat buffers,
gradients are zero-filled views after ``zero_grad()`` rather than ``None``, and a
parameter that got no gradient is still updated by momentum and weight decay.
"""
from .. import backend as B
from ..nn.utils.flat import flatten_parameters
from ..tensor import Parameter, Tensor


class Optimizer:
    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups = []
        self._flat = []      # per group: (data, grad) flat views
        self._bound = []     # per group: [(param, data view, grad tensor)]
        self.state = {}      # per group index: dict of flat state arrays
        seen = set()
        for g in groups:
            self.add_param_group(g, seen)

    def add_param_group(self, group, _seen=None):
        group = dict(group)
        ps = group["params"]
        ps = [ps] if isinstance(ps, Tensor) else list(ps)
        for p in ps:
            if not isinstance(p, Parameter):
                raise TypeError(f"{type(self).__name__}: can only optimize Parameters, got "
                                f"{type(p).__name__}")
        seen = _seen if _seen is not None else {id(p) for g in self.param_groups
                                                for p in g["params"]}
        if any(id(p) in seen for p in ps):
            raise ValueError(f"{type(self).__name__}: some parameters appear in more than one "
                             f"parameter group")
        seen.update(id(p) for p in ps)
        group["params"] = ps
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self.param_groups.append(group)
        self._flat.append(None)
        self._bound.append(None)
        self._bind(len(self.param_groups) - 1)

    def _bind(self, i):
        ps = self.param_groups[i]["params"]
        self._flat[i] = flatten_parameters(ps)
        self._bound[i] = [(p, p.data, p.grad) for p in ps]

    def _group_buffers(self, i):
        """(data, grad) of group i, rebinding first if someone replaced a param's arrays."""
        for p, d, g in self._bound[i]:
            if p.data is not d or p.grad is not g:
                self._bind(i)
                break
        return self._flat[i]

    def zero_grad(self, set_to_none=True):
        """Zero every group's flat gradient (the per-parameter grads are views of it)."""
        for i in range(len(self.param_groups)):
            self._group_buffers(i)[1].fill(0)

    def step(self, closure=None):
        loss = None
        if closure is not None:
            from ..grad_mode import enable_grad
            with enable_grad():
                loss = closure()
        for i, group in enumerate(self.param_groups):
            data, grad = self._group_buffers(i)
            self._update(group, data, grad, self.state.setdefault(i, {}))
        return loss

    def _update(self, group, data, grad, state):
        raise NotImplementedError

    def state_dict(self):
        groups = []
        index = 0
        for g in self.param_groups:
            entry = {k: v for k, v in g.items() if k != "params"}
            entry["params"] = list(range(index, index + len(g["params"])))
            index += len(g["params"])
            groups.append(entry)
        state = {i: {k: (v.copy() if isinstance(v, B.xp.ndarray) else v) for k, v in s.items()}
                 for i, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"{type(self).__name__}.load_state_dict: {len(groups)} parameter "
                             f"groups in the state, {len(self.param_groups)} in the optimizer")
        for i, (mine, theirs) in enumerate(zip(self.param_groups, groups)):
            if len(theirs["params"]) != len(mine["params"]):
                raise ValueError(f"{type(self).__name__}.load_state_dict: group {i} has "
                                 f"{len(theirs['params'])} parameters in the state, "
                                 f"{len(mine['params'])} in the optimizer")
        for mine, theirs in zip(self.param_groups, groups):
            mine.update({k: v for k, v in theirs.items() if k != "params"})
        self.state = {int(i): {k: (B.xp.array(v) if isinstance(v, B.xp.ndarray) else v)
                               for k, v in s.items()}
                      for i, s in state_dict["state"].items()}

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k, v in sorted(g.items()):
                if k != "params":
                    lines.append(f"    {k}: {v}")
        return "\n".join(lines) + "\n)"

"""Optimizer parameter groups named by module, e.g. Koch et al.'s per-layer settings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from torch import nn


def resolve_param_groups(
    named_parameters: Iterable[tuple[str, nn.Parameter]], groups: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Optimizer parameter groups from groups that name their modules, e.g. per layer.

    Each group's ``params`` is a module name or a list of them (prefixes of
    ``named_parameters()``: ``encoder.fc`` takes ``encoder.fc.weight`` and ``encoder.fc.bias``);
    its other keys (``lr``, ``momentum``, ``weight_decay``, ...) override the optimizer's
    defaults for those parameters. Each group is named after its modules (unless it has a
    ``name``), so the learning-rate monitor logs ``lr-SGD/encoder.fc``. Parameters that no
    group names form a last group, ``other``, with the optimizer's defaults.

    Raises:
        ValueError: a group without ``params``, a name that matches no parameter, or a
            parameter that two groups claim.
    """
    named = list(named_parameters)
    owner: dict[str, int] = {}
    resolved = []
    for index, group in enumerate(groups):
        if "params" not in group:
            raise ValueError(f"param_groups[{index}] has no 'params' (module names): {dict(group)}")
        prefixes = [group["params"]] if isinstance(group["params"], str) else list(group["params"])
        for prefix in prefixes:
            matched = [name for name, _ in named if name == prefix or name.startswith(prefix + ".")]
            if not matched:
                modules = sorted({name.rsplit(".", 1)[0] for name, _ in named})
                raise ValueError(
                    f"param_groups[{index}]: {prefix!r} matches no parameter; modules with parameters: {modules}"
                )
            for name in matched:
                if owner.setdefault(name, index) != index:
                    raise ValueError(f"parameter {name} is in param_groups[{owner[name]}] and param_groups[{index}]")
        params = [p for name, p in named if owner.get(name) == index]
        resolved.append({"name": ", ".join(prefixes), **group, "params": params})
    rest = [p for name, p in named if name not in owner]
    if rest:
        resolved.append({"name": "other", "params": rest})
    return resolved

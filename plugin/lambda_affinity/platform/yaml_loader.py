"""The one YAML loader (platform.model_file.parse_yaml uses it): PyYAML's safe loader, bounded and without
YAML 1.1's sexagesimal numbers.

- Aliases: a node is counted as expanded (an alias counts the whole subtree it names), so a "billion laughs"
  document, a few hundred bytes of anchors of anchors, stops at MAX_NODES instead of filling memory when it is
  printed or walked. Nesting stops at MAX_DEPTH (PyYAML composes recursively).
- `1:30` unquoted is YAML 1.1's sexagesimal 90; YAML 1.2 reads it as the text "1:30", as this loader does: a
  duration or distribution key then reads it as the command line would (`A:B` uniform seconds), and a key that
  wants a number refuses it, instead of 90 going through without a word.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from .config import ConfigError

MAX_NODES = 100_000
MAX_DEPTH = 100


class YamlLimitError(ConfigError):
    """A YAML document over the loader's bounds."""


# PyYAML's own int and float patterns (yaml/resolver.py), less their sexagesimal alternatives (`1:30`, `1:30.5`)
_INT = re.compile(
    r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+)$""",
    re.X,
)
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
    |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_PATTERNS = {"tag:yaml.org,2002:int": _INT, "tag:yaml.org,2002:float": _FLOAT}


def _resolvers() -> dict:
    return {
        first: [(tag, _PATTERNS.get(tag, regexp)) for tag, regexp in entries]
        for first, entries in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader with expanded-node and depth bounds, and no sexagesimal numbers."""

    yaml_implicit_resolvers = _resolvers()

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise YamlLimitError(f"line {mark.line + 1}, column {mark.column + 1}: nested deeper than {MAX_DEPTH}")
            node: Any = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        size = self._sizes.get(id(node))
        if size is None:
            size = 1
            if isinstance(node, yaml.SequenceNode):
                size += sum(self._sizes[id(child)] for child in node.value)
            elif isinstance(node, yaml.MappingNode):
                size += sum(self._sizes[id(k)] + self._sizes[id(v)] for k, v in node.value)
            self._sizes[id(node)] = size
        if size > MAX_NODES:
            mark = node.start_mark
            raise YamlLimitError(
                f"line {mark.line + 1}, column {mark.column + 1}: expands to more than {MAX_NODES:,} values "
                "(aliases of aliases?): refusing it"
            )
        return node

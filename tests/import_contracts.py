"""A contract type for import-linter that lint-imports loads (pyproject.toml, [tool.importlinter]).

`acyclic_siblings` (import-linter's own) looks only at imports between sibling modules, so a submodule
importing its own package while that package's __init__ imports the submodule (roles.py taking a name
from locust_plugin/__init__.py, which imports plugin.py, which imports roles.py) passes it. This one
walks the whole module graph, package __init__ files included, and reports every cycle it meets.
"""

from __future__ import annotations

from importlinter import Contract, ContractCheck, fields, output


class AcyclicModulesContract(Contract):
    """No chain of imports, in any function or at module level, leads from a module back to itself."""

    containers = fields.ListField(subfield=fields.StringField())

    def check(self, graph, verbose: bool) -> ContractCheck:
        modules = set()
        for container in self.containers:  # type: ignore[attr-defined]
            modules |= {container} | graph.find_descendants(container)
        cycles: list[list[str]] = []
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        path: list[str] = []

        def visit(module: str) -> None:
            state[module] = 1
            path.append(module)
            for target in sorted(graph.find_modules_directly_imported_by(module) & modules):
                if state.get(target) == 1:
                    cycles.append(path[path.index(target) :] + [target])
                elif target not in state:
                    visit(target)
            path.pop()
            state[module] = 2

        for module in sorted(modules):
            if module not in state:
                visit(module)
        return ContractCheck(kept=not cycles, metadata={"cycles": cycles})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for cycle in check.metadata["cycles"]:
            output.print_error(" -> ".join(cycle), bold=False)
            output.new_line()

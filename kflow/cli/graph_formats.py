"""Rendering an instance graph as text, Graphviz dot, Mermaid or JSON."""

from __future__ import annotations

import json

from kflow.graph import Graph


def as_text(graph: Graph) -> str:
    """One line per instance in build order, with what it requires."""
    lines = []
    for instance in graph.instances.values():
        line = str(instance.id)
        if instance.requires:
            line += "  <- " + ", ".join(str(r) for r in instance.requires)
        lines.append(line)
    return "\n".join(lines)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def as_dot(graph: Graph) -> str:
    lines = [f"digraph {_quote(graph.project.name)} {{", "  rankdir=LR;", "  node [shape=box];"]
    for instance in graph.instances.values():
        style = ", style=bold" if instance.id in graph.targets else ""
        lines.append(f"  {_quote(str(instance.id))} [label={_quote(str(instance.id))}{style}];")
    for instance in graph.instances.values():
        for req in instance.requires:
            lines.append(f"  {_quote(str(req))} -> {_quote(str(instance.id))};")
    lines.append("}")
    return "\n".join(lines)


def as_mermaid(graph: Graph) -> str:
    index = {iid: f"n{i}" for i, iid in enumerate(graph.instances)}
    lines = ["flowchart LR"]
    for iid, node in index.items():
        label = str(iid).replace('"', "#quot;")
        lines.append(f'  {node}["{label}"]')
    for instance in graph.instances.values():
        for req in instance.requires:
            lines.append(f"  {index[req]} --> {index[instance.id]}")
    return "\n".join(lines)


def as_json(graph: Graph) -> str:
    nodes = [
        {
            "id": str(i.id),
            "task": i.id.task,
            "params": i.id.param_dict,
            "requires": [str(r) for r in i.requires],
            "outputs": dict(i.outputs),
            "inputs": list(i.inputs),
            "argv": list(i.argv),
            "target": i.id in graph.targets,
        }
        for i in graph.instances.values()
    ]
    return json.dumps({"project": graph.project.name, "instances": nodes}, indent=2)


FORMATS = {"text": as_text, "dot": as_dot, "mermaid": as_mermaid, "json": as_json}

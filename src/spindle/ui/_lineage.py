"""The lineage of a model version drawn as an SVG: one column per kind of artifact, left to
right as the data flowed (raw partitions → tables → training set → run → version → evaluation →
deployments), each node linked to its page where it has one."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

SHOWN = 8  # nodes drawn per column; the rest are counted in a last node
NODE_W, NODE_H, GAP_X, GAP_Y, TOP = 150, 30, 44, 8, 30


@dataclass(frozen=True)
class Node:
    label: str
    title: str
    href: str | None = None
    status: str | None = None


def _short(text: str, n: int = 22) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def columns(model: str, report: dict[str, Any]) -> list[tuple[str, list[Node]]]:
    """The lineage report of ``model@version`` (``spindle.lineage_report``) as columns."""
    chain = {link["kind"]: link["artifacts"] for link in report["chain"]}
    raw = [
        Node(f"{a['properties'].get('source')} {a['properties'].get('date')}", a["id"])
        for a in chain["raw_partition"]
    ]
    tables = [
        Node(f"{a['properties']['table']} @{a['properties']['version']}", a["id"])
        for a in chain["table_version"]
    ]
    sets = [
        Node(f"training set {a['properties'].get('rows', '?')} rows", a["id"])
        for a in chain["training_set"]
    ]
    sets += [
        Node(
            f"base v{a['properties'].get('version')}",
            a["id"],
            f"/models/{model}/{a['properties'].get('version')}",
        )
        for a in chain["base_version"]
    ]
    runs = []
    if "training_run" in report:
        run = report["training_run"]
        wall = run["resources"].get("wall_s")
        runs.append(
            Node(
                f"train run {wall if wall is not None else '?'} s",
                f"run {run['id']}",
                f"/runs?step=train&model={model}",
                run["status"],
            )
        )
    version = [
        Node(
            f"{model} v{report['version']}",
            f"model:{model}@{report['version']}",
            f"/models/{model}/{report['version']}",
        )
    ]
    evaluations = [
        Node(f"holdout {a['properties'].get('dates', ['?'])[0]}", a["id"]) for a in chain["holdout"]
    ] + [
        Node(
            f"eval {a['properties'].get('holdout_date')} {a['properties'].get('decision')}",
            a["id"],
            None,
            a["properties"].get("decision"),
        )
        for a in chain["evaluation"]
    ]
    deployments = [
        Node(
            f"#{d['seq']} {d['status']} by {d['actor']}",
            f"{d['at'][:19]} {d['reason']}",
            None,
            d["status"],
        )
        for d in report.get("deployments", [])
    ]
    return [
        ("raw partitions", raw),
        ("tables", tables),
        ("training set", sets),
        ("run", runs),
        ("version", version),
        ("evaluation", evaluations),
        ("deployments", deployments),
    ]


def svg(cols: list[tuple[str, list[Node]]]) -> dict[str, Any]:
    """Positions of the columns, nodes and arrows, for the template to draw."""
    drawn: list[dict[str, Any]] = []
    tallest = 1
    for i, (title, nodes) in enumerate(cols):
        shown = nodes[:SHOWN]
        if len(nodes) > SHOWN:
            shown = [*nodes[: SHOWN - 1], Node(f"+ {len(nodes) - SHOWN + 1} more", "")]
        x = 10 + i * (NODE_W + GAP_X)
        boxes = [
            {"x": x, "y": TOP + j * (NODE_H + GAP_Y), "node": n, "label": _short(n.label)}
            for j, n in enumerate(shown)
        ]
        tallest = max(tallest, len(shown))
        drawn.append({"title": f"{title} ({len(nodes)})", "x": x, "boxes": boxes})
    height = TOP + tallest * (NODE_H + GAP_Y) + 10
    arrows = []
    for left, right in itertools.pairwise(drawn):
        if left["boxes"] and right["boxes"]:
            y1 = (left["boxes"][0]["y"] + left["boxes"][-1]["y"] + NODE_H) / 2
            y2 = (right["boxes"][0]["y"] + right["boxes"][-1]["y"] + NODE_H) / 2
            arrows.append({"x1": left["x"] + NODE_W, "y1": y1, "x2": right["x"] - 4, "y2": y2})
    width = 20 + len(cols) * (NODE_W + GAP_X)
    return {
        "columns": drawn,
        "arrows": arrows,
        "width": width,
        "height": height,
        "node_w": NODE_W,
        "node_h": NODE_H,
    }

"""Figures of a parameter breakdown: a treemap of where they are, a bar per part."""
from __future__ import annotations

import plotly.graph_objects as go

from ..params import GROUPS, ParamBreakdown, ParamLine, fmt_int
from .palette import CATEGORIES

GROUP_COLORS = {"embeddings": CATEGORIES[0], "transformer blocks": CATEGORIES[1],
                "final norm": CATEGORIES[2], "output head": CATEGORIES[5]}


def params_treemap(bd: ParamBreakdown) -> go.Figure:
    """Model -> embeddings / blocks / final norm / head -> parts -> lines, area = parameters.

    A level with a single child is skipped, so every box is worth reading.
    """
    nodes: list[tuple[str, str, str, int, str, str]] = [
        ("model", f"model<br>{fmt_int(bd.total)}", "", bd.total, "#dddddd", "all parameters")]

    def how(l: ParamLine) -> str:
        return f"{l.formula} = {l.filled}" + (f" (x {l.repeat} blocks)" if l.repeat > 1 else "")

    for g, total in bd.group_totals().items():
        members = [l for l in bd.lines if l.group == g and l.total]
        if not members:
            continue
        label = f"{g} (x {bd.config.n_layers})" if g == "transformer blocks" else g
        if len(members) == 1:
            nodes.append((g, label, "model", total, GROUP_COLORS[g], how(members[0])))
            continue
        nodes.append((g, label, "model", total, GROUP_COLORS[g], g))
        parts = list(dict.fromkeys(l.part for l in members))
        for part in parts:
            in_part = [l for l in members if l.part == part]
            parent = g
            if len(parts) > 1 and len(in_part) > 1:
                parent = f"{g}/{part}"
                nodes.append((parent, part, g, sum(l.total for l in in_part), GROUP_COLORS[g], part))
            for l in in_part:
                nodes.append((f"{g}/{part}/{l.name}", _code_name(l.name), parent, l.total, GROUP_COLORS[g],
                              f"{l.name}<br>{how(l)}"))
    ids, labels, parents, values, colors, hover = map(list, zip(*nodes))
    fig = go.Figure(go.Treemap(
        ids=ids, labels=labels, parents=parents, values=values, branchvalues="total",
        marker=dict(colors=colors), customdata=hover,
        hovertemplate="%{label}<br>%{value:,} parameters (%{percentRoot:.1%})<br>%{customdata}<extra></extra>",
        textinfo="label+percent root", textfont=dict(size=15),
    ))
    # A box too small for its label at 11 px shows none (hover still tells), rather than 5 px text.
    fig.update_layout(title=f"Where the {fmt_int(bd.total)} parameters are "
                            f"({'tied' if bd.config.tie_embeddings else 'untied'} head)",
                      margin=dict(t=60, l=10, r=10, b=10), uniformtext=dict(minsize=11, mode="hide"),
                      meta={"i18n_categories": ["labels"]})     # the boxes are named parts, not tokens
    return fig


def _code_name(name: str) -> str:
    """A part's code name, the book's (``ff.layers[0]`` of "feed-forward first layer (ff.layers[0])"): short
    enough to fit a tall, narrow box, the same in every language; the full name is on hover."""
    inside = name.rsplit(" (", 1)[-1].rstrip(")") if " (" in name else name
    return inside.split(",")[0].split(":")[0].strip()


def params_bar(bd: ParamBreakdown) -> go.Figure:
    """One horizontal bar per line (all blocks together), in forward order, coloured by group."""
    lines = [l for l in bd.lines if l.total]
    names = [l.name + (f" x {l.repeat}" if l.repeat > 1 else "") for l in lines]
    fig = go.Figure()
    for g in GROUPS:
        sel = [i for i, l in enumerate(lines) if l.group == g]
        if not sel:
            continue
        fig.add_trace(go.Bar(
            y=[names[i] for i in sel], x=[lines[i].total for i in sel], orientation="h", name=g,
            marker_color=GROUP_COLORS[g],
            text=[f"{lines[i].total / bd.total:.1%}" for i in sel], textposition="outside", cliponaxis=False,
            customdata=[[lines[i].formula, lines[i].filled] for i in sel],
            hovertemplate="%{y}<br>%{customdata[0]} = %{customdata[1]}<br>%{x:,}<extra></extra>",
        ))
    # Room right of the longest bar for its percentage; the legend inside, beside the norms' tiny bars.
    longest = max((l.total for l in lines), default=1)
    fig.update_layout(title=f"Parameters per part ({fmt_int(bd.total)} in all)",
                      xaxis=dict(title="parameters", range=[0, longest * 1.25]),
                      yaxis=dict(autorange="reversed", categoryorder="array", categoryarray=names),
                      legend=dict(x=1, y=0, xanchor="right", yanchor="bottom", bgcolor="rgba(255,255,255,0.8)"),
                      height=max(350, 28 * len(names) + 120), margin=dict(l=10),
                      meta={"i18n_categories": ["y"], "i18n_axes": ["yaxis"]})
    return fig

"""The search page at GET /: one server-rendered HTML document, no script, every value escaped."""

from __future__ import annotations

from html import escape
from typing import Any

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.3rem;margin:0 0 .2rem}.meta{color:#666;font-size:.85rem;margin:0 0 1rem}
form{display:flex;gap:.5rem;margin-bottom:1rem}input[name=q]{flex:1;padding:.45rem;font-size:1rem}
input[name=k]{width:4rem;padding:.45rem}button{padding:.45rem 1rem}
table{border-collapse:collapse;width:100%}td,th{padding:.4rem .5rem;border-bottom:1px solid #eee;
vertical-align:top;text-align:left}td.score{font-variant-numeric:tabular-nums;white-space:nowrap}
td.id{font-family:monospace;white-space:nowrap;color:#555}.error{color:#a00}
"""


def render_page(query: str, k: int, hits: list[dict] | None, message: str | None,
                health: dict[str, Any]) -> str:
    """The page: a query box, then the hits (score, id, text), and what was searched."""
    model = health["model"]
    index = health.get("index")
    searched = (f"index {escape(index['path'])} ({index['documents']} documents, "
                f"{escape(str(index['factory']))})" if index else "no index loaded")
    rows = ""
    if message:
        rows = f'<p class="error">{escape(message)}</p>'
    elif hits is not None and not hits:
        rows = "<p>No documents.</p>"
    elif hits:
        body = "".join(
            f'<tr><td>{hit["rank"]}</td><td class="score">{hit["score"]:.3f}</td>'
            f'<td class="id">{escape(_label(hit))}</td><td>{escape(hit["text"])}</td></tr>'
            for hit in hits)
        rows = ("<table><thead><tr><th>#</th><th>score</th><th>id</th><th>text</th></tr></thead>"
                f"<tbody>{body}</tbody></table>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{escape(query) + ' - ' if query else ''}semsearch</title><style>{STYLE}</style></head>
<body><h1>semsearch</h1>
<p class="meta">model {escape(model['name'])} (fingerprint {escape(model['fingerprint'])}) &middot;
{searched}</p>
<form method="get" action="/"><input name="q" value="{escape(query)}" placeholder="Search"
 autofocus><input name="k" type="number" min="1" value="{int(k)}" title="results">
<button type="submit">Search</button></form>
{rows}
</body></html>
"""


def _label(hit: dict) -> str:
    return hit["id"] if hit["chunks"] <= 1 else f"{hit['id']}#{hit['chunk']}"

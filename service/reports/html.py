"""The HTML pieces of a report: escaping, notes, tables, sections, and plots as divs."""

import html
import logging
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

log = logging.getLogger(__name__)


# The report stays offline and private: no Plotly logo (a link to plotly.com) and no "Share
# chart..." button, which plotly.js 3 shows by default and which uploads the figure's data to
# Plotly Cloud.
PLOT_CONFIG = {
    "displaylogo": False,
    "showSendToCloud": False,
    "plotlyServerURL": "",
    "responsive": True,
}


STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1rem 2rem;
       color: #222; }
h1 { margin-bottom: 0.2rem; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0; }
th, td { border: 1px solid #ddd; padding: 0.2rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
.tf-note { color: #666; font-style: italic; }
.tf-plot { margin: 0.5rem 0 1.5rem; }
.tf-muted { color: #666; }
.tf-caption { color: #444; margin-bottom: 0; }
"""


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """plotly.js's source (about 4.8 MB), read once per process."""
    import plotly.offline

    return str(plotly.offline.get_plotlyjs())


def e(value: object) -> str:
    """``value`` as text safe inside HTML elements and quoted attributes."""
    return html.escape(str(value), quote=True)


def fmt(value: object) -> str:
    """A number in six significant digits, anything else as it prints; escaped."""
    if isinstance(value, float):
        return e(f"{value:.6g}")
    return e(value)


def note(text: str) -> str:
    """A note standing in for what cannot be shown yet."""
    return f'<p class="tf-note">{e(text)}</p>'


def caption(text: str) -> str:
    """What the plot after it shows and how it was computed."""
    return f'<p class="tf-caption">{e(text)}</p>'


def table(header: Sequence[str], rows: Sequence[Sequence[str]], total: int) -> str:
    """A table of pre-escaped cells, with a line counting the rows left out."""
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    more = total - len(rows)
    tail = f'<p class="tf-muted">and {more} more</p>' if more > 0 else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{tail}"


def section(key: str, title: str, body: str) -> str:
    return f'<section id="{e(key)}"><h2>{e(title)}</h2>{body}</section>'


class Page:
    """Collects the plots of one report: each is a ``div.tf-plot`` with a stable id."""

    def __init__(self) -> None:
        self.plots = 0

    def plot(self, name: str, make: Callable[[], Any]) -> str:
        """The figure ``make()`` builds, as HTML; a note if building it fails."""
        try:
            fig = make()
        except Exception as exc:  # one plot that cannot be drawn must not cost the report
            log.warning("report plot %s failed", name, exc_info=True)
            return note(f"This plot could not be drawn: {type(exc).__name__}: {exc}")
        self.plots += 1
        div = fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=f"tf-plot-{self.plots}",
            config=PLOT_CONFIG,
        )
        return f'<div class="tf-plot" data-plot="{e(name)}">{div}</div>'

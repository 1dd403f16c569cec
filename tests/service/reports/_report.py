"""Shared by the report tests (``test_report*``, and the browser test): a real study's spec,
the plots a finished single-objective study gets, and a report read the way a browser parses
it."""

from html.parser import HTMLParser
from typing import Any

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)


def tiny_spec(name: str = "report-e2e") -> dict[str, Any]:
    """A digits MLP study of 3 trials, 3 epochs each: a few seconds on two cores."""
    return {
        "name": name,
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "algorithm": {"name": "random", "settings": {"seed": 0}},
        "search_space": {
            "training.lr": {"type": "float", "low": 0.01, "high": 0.1, "log": True},
            "model.width": {"type": "int", "low": 16, "high": 64, "log": True},
        },
        "budget": {"max_trials": 3},
        "parallelism": 2,
        "resources": {"cpu": 1},
        "task": {
            "dataset": {"name": "digits"},
            "model": {"family": "mlp", "hidden_layers": 1},
            "training": {"epochs": 3, "optimizer": "sgd", "momentum": 0.9},
        },
    }


# The plots a finished single-objective study with varying parameters gets, in page order.
SINGLE_PLOTS = [
    "optimization-history",
    "intermediate-values",
    "parallel-coordinate",
    "param-importances",
    "learning-curves",
]


class Page(HTMLParser):
    """What a report shows, read the way a browser parses it (script bodies are not markup)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.plot_count: int | None = None
        self.plots: list[str] = []  # data-plot of each div.tf-plot
        self.sections: list[str] = []
        self.notes: list[str] = []
        self.urls: list[str] = []  # every src and href
        self.tags: list[str] = []
        self.scripts: list[str] = []  # each script's body
        self.text = ""  # the visible text
        self._in: str | None = None  # "script", "note" or None
        self._buf = ""
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append(tag)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href")]
        if tag == "main" and a.get("data-plot-count") is not None:
            self.plot_count = int(a["data-plot-count"] or "")
        if tag == "div" and "tf-plot" in (a.get("class") or "").split():
            self.plots.append(a.get("data-plot") or "")
        if tag == "section":
            self.sections.append(a.get("id") or "")
        if tag == "script" or (tag == "p" and a.get("class") == "tf-note"):
            self._in, self._buf = ("script" if tag == "script" else "note"), ""

    def handle_endtag(self, tag: str) -> None:
        if self._in == "script" and tag == "script":
            self.scripts.append(self._buf)
            self._in = None
        elif self._in == "note" and tag == "p":
            self.notes.append(self._buf)
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in is not None:
            self._buf += data
        if self._in != "script":
            self.text += data

    def note(self, fragment: str) -> str:
        found = [n for n in self.notes if fragment in n]
        assert len(found) == 1, (fragment, self.notes)
        return found[0]

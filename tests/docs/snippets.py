"""The code blocks of the README and of ``docs/``, found and sorted by what checks them.

Every fenced block is a :class:`Snippet` of one kind:

- ``spec``: a study (YAML or JSON) that the API must accept. A fragment (no ``name``) is a
  part of a study: its top-level fields replace those of ``examples/digits-mlp.yaml``.
- ``shell``: command lines run with bash against a live server, in order, page by page.
- ``python``: a script run against a live server.
- ``output``: what a command prints or the API answers; JSON must parse. Nothing runs.
- ``no-run``: a command that cannot run in a test (it installs, starts a server for good, or
  needs a Docker engine); its reason names what checks it instead.

A block's kind follows from its language (``yaml``/``json``: spec, ``bash``: shell,
``python``: python, ``text`` or none: output) unless an HTML comment on the line before the
fence says otherwise: ``<!-- snippet: output -->``, ``<!-- snippet: no-run <reason> -->``.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("spec", "shell", "python", "output", "no-run")
_BY_LANGUAGE = {
    "yaml": "spec",
    "json": "spec",
    "bash": "shell",
    "python": "python",
    "text": "output",
    "": "output",
}
_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+)\s*(?P<lang>[\w+-]*)")
_DIRECTIVE = re.compile(r"<!--\s*snippet:\s*(?P<kind>[\w-]+)\s*(?P<note>.*?)\s*-->")


@dataclass(frozen=True)
class Snippet:
    page: str  # relative to the repository root
    line: int  # of the opening fence, 1-based
    lang: str
    kind: str
    note: str  # the directive's words after the kind (a no-run's reason)
    text: str

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    """README.md, then every page under docs/, in name order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def snippets(page: Path) -> Iterator[Snippet]:
    """The page's fenced code blocks in order; ValueError for an unknown kind or language."""
    lines = page.read_text(encoding="utf-8").splitlines()
    name = str(page.relative_to(ROOT))
    i = 0
    while i < len(lines):
        opened = _FENCE.match(lines[i])
        if opened is None:
            i += 1
            continue
        fence, indent = opened["fence"], len(opened["indent"])
        end = next(
            (j for j in range(i + 1, len(lines)) if lines[j].strip() == fence),
            None,
        )
        if end is None:
            raise ValueError(f"{name}:{i + 1}: a code block that never closes")
        directive = _DIRECTIVE.search(lines[i - 1]) if i else None
        lang = opened["lang"].lower()
        if directive is not None:
            kind, note = directive["kind"], directive["note"]
        elif lang in _BY_LANGUAGE:
            kind, note = _BY_LANGUAGE[lang], ""
        else:
            raise ValueError(f"{name}:{i + 1}: a ```{lang} block: say its kind (see KINDS)")
        if kind not in KINDS:
            raise ValueError(f"{name}:{i + 1}: unknown snippet kind {kind!r}")
        text = "\n".join(line[indent:] for line in lines[i + 1 : end]) + "\n"
        yield Snippet(name, i + 1, lang, kind, note, text)
        i = end + 1


def all_snippets() -> list[Snippet]:
    return [s for page in pages() for s in snippets(page)]

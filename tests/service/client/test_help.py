"""``tuneforge --help`` and every command's help read cleanly: arguments and values named in
capitals, flags bare, every sentence whole at 80 columns."""

import re

import pytest
import typer
from typer.testing import CliRunner

from service.cli import app


def commands(group: typer.Typer, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command of the app, as the words that name it (``("keys", "list")``)."""
    out = []
    for info in group.registered_commands:
        out.append((*prefix, info.name or info.callback.__name__.replace("_", "-")))  # type: ignore[union-attr]
    for sub in group.registered_groups:
        assert sub.typer_instance is not None and sub.name is not None
        out += commands(sub.typer_instance, (*prefix, sub.name))
    return out


ALL = [(), *commands(app)]


def help_text(words: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*words, "--help"], prog_name="tuneforge", terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.output


def test_every_command_is_checked() -> None:
    names = {" ".join(c) for c in ALL}
    assert {"submit", "watch", "resume", "trials", "best", "keys list", "scheduler"} <= names


@pytest.mark.parametrize("words", ALL, ids=lambda w: " ".join(w) or "tuneforge")
def test_help_has_no_type_labels_placeholders_or_cut_sentences(words: tuple[str, ...]) -> None:
    text = help_text(words)
    assert not re.search(r"<\w+[^>]*>", text), text  # typer's <int>, <bool>, <path>
    assert "{" not in text and "}" not in text, text  # typer's {study_id}
    assert "/ --no-" not in text.replace("--scheduler / --no-scheduler", ""), text  # flags bare
    lines = text.splitlines()
    for line, following in zip(lines[1:], [*lines[2:], ""], strict=True):  # after the usage
        assert not line.endswith("..."), f"cut short: {line!r}"
        # A line that ends inside a word: a word broken at its hyphen (--no-|scheduler).
        broken = re.search(r"\w-$", line) and re.match(r"\s*\w", following)
        assert not broken, f"broken word: {line!r} / {following!r}"
    if words:
        usage = lines[0].split()
        assert usage[:3] == ["Usage:", "tuneforge", *words[:1]]
        assert all(re.fullmatch(r"\[?[A-Z_]+\]?|\[OPTIONS\]", w) for w in usage[2 + len(words) :])


def test_the_command_list_gives_each_command_a_whole_sentence() -> None:
    listing = help_text(()).split("Commands:\n", 1)[1]
    # Each entry: the name, then its sentence (wrapped onto indented lines if long).
    entries = re.findall(r"^  (\S+) +(.+(?:\n {4,}.+)*)", listing, re.M)
    assert len(entries) == len(app.registered_commands) + len(app.registered_groups)
    for name, description in entries:
        assert description.endswith(".") and not description.endswith("..."), name
    described = dict(entries)
    assert described["scheduler"] == "Run only the trial scheduler (cluster mode)."


def test_flags_are_shown_as_themselves() -> None:
    assert re.search(r"^  --wait\s+Watch it live", help_text(("submit",)), re.M)
    assert re.search(r"^  --json\s+Print the API's JSON", help_text(("trials",)), re.M)
    assert re.search(r"^  --state STATE\s+Only trials in this state", help_text(("trials",)), re.M)
    assert help_text(("trials",)).splitlines()[0] == "Usage: tuneforge trials [OPTIONS] ID"
    assert help_text(("quota",)).splitlines()[0] == "Usage: tuneforge quota [OPTIONS] [TENANT]"


def test_the_scheduler_s_help_is_whole_sentences() -> None:
    text = help_text(("scheduler",))
    paragraphs = text.split("\n\n")
    assert paragraphs[1].strip() == "Run only the trial scheduler (cluster mode)."
    assert " ".join(paragraphs[2].split()).endswith("until SIGTERM or Ctrl-C.")

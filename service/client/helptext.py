"""Plain ``--help`` for the ``tuneforge`` command: arguments and option values named in
capitals as most command-line tools write them (``tuneforge trials [OPTIONS] ID``,
``--state STATE``), instead of typer's ``{study_id}`` and ``<int>`` marks; the list of
commands gives each one's first sentence whole, never cut with ``...``."""

import re
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup

F = TypeVar("F", bound=Callable[..., Any])


class Command(TyperCommand):
    """A command whose arguments and valued options are named by their metavar (given, or
    the parameter's name in capitals); flags stay bare (``--json``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.metavar is None and not getattr(param, "is_flag", False):
                param.metavar = (param.name or "value").upper()

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """``[OPTIONS] ID [TENANT]``: required arguments bare, optional ones in brackets."""
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = str(param.metavar)
                pieces.append(name if param.required else f"[{name}]")
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        """The Arguments section (name and help), then the Options section."""
        arguments = [
            (str(p.metavar), getattr(p, "help", None) or "")
            for p in self.get_params(ctx)
            if p.param_type_name == "argument"
        ]
        options = [
            record
            for p in self.get_params(ctx)
            if p.param_type_name == "option" and (record := p.get_help_record(ctx))
        ]
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def first_sentence(help_text: str) -> str:
    """The first sentence of a help text's first paragraph, on one line."""
    paragraph = " ".join(help_text.split("\n\n")[0].split())
    match = re.match(r"(.+?\.)(\s|$)", paragraph)
    return match.group(1) if match else paragraph


class Group(TyperGroup):
    """A group whose list of commands shows each one's first sentence, wrapped if long."""

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """The Commands section: each command's name and first sentence."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.short_help or first_sentence(command.help or "")))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class Typer(typer.Typer):
    """A typer app with :class:`Group`'s list of commands and :class:`Command`'s help."""

    def __init__(self, *, cls: type[TyperGroup] | None = None, **kwargs: Any) -> None:
        super().__init__(cls=cls or Group, **kwargs)

    def command(
        self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **kwargs: Any
    ) -> Callable[[F], F]:
        """Register a command, as :meth:`typer.Typer.command` does, with plain help."""
        return super().command(name, cls=cls or Command, **kwargs)

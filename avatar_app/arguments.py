"""What every command's parser shares: a help layout that shows each option's default, and
commands bound by name, so a parser imports none of the code a command runs."""
from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written (the examples keep their lines); an option's help
    ends with "(default: X)" unless it has no default or its text already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (default is None or default is False or default is argparse.SUPPRESS or default == []
                or "default" in text or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser with `HelpFormatter`; its subcommands' parsers are Parsers too. A long
    option's value may start with a dash (`--loudness -23LUFS`, `--text "-hi"`): argparse alone
    takes such a value for an unknown option."""

    def __init__(self, *args: object, formatter_class: type = HelpFormatter, **kwargs: object) -> None:
        super().__init__(*args, formatter_class=formatter_class, **kwargs)

    def parse_known_args(self, args: Sequence[str] | None = None,
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        return super().parse_known_args(None if args is None else self._attach_dashed_values(list(args)), namespace)

    def _attach_dashed_values(self, args: list[str]) -> list[str]:
        """`--option -value` as `--option=-value` where --option takes one value and -value is
        none of this parser's options."""
        out: list[str] = []
        index = 0
        while index < len(args):
            token = args[index]
            if token == "--":
                return out + args[index:]
            action = self._option_string_actions.get(token)
            following = args[index + 1] if index + 1 < len(args) else ""
            if (token.startswith("--") and action is not None and action.nargs is None
                    and following.startswith("-") and following != "--"
                    and following.split("=", 1)[0] not in self._option_string_actions):
                out.append(f"{token}={following}")
                index += 2
                continue
            out.append(token)
            index += 1
        return out


def lazy_command(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """The command `name` of `module`, imported when the command runs, not when it is parsed."""
    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module), name)(args)
    return run

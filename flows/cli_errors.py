"""How every command reports a user's mistake: one `error:` line and exit status 2."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer
from pydantic import ValidationError

from pipeline.errors import MMRError

# The command line's own parsing errors, which `flows.cli.main` turns into one line too. Typer
# vendors click since 0.2x (its classes, not click's, are raised); older ones use click itself.
try:
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError

__all__ = ["ClickException", "NoArgsIsHelpError", "UsageError", "one_line_errors"]


def one_line_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Report a user's mistake as one `error:` line and exit 2; bugs keep their traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except MMRError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from None
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(str(part) for part in problem["loc"]) or "input"
            typer.echo(f"error: {where}: {problem['msg']}", err=True)
            raise typer.Exit(2) from None

    return wrapper

"""The command group, its error boundary, and the few helpers every command shares:
the exit codes, the ``--debug`` switch, one error line (:func:`fail`, :func:`error_line`),
and rich's console and table, imported only when something is printed (a quiet scheduled
scan does not pay for rich).
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from typing import TYPE_CHECKING, Any, NoReturn

import click

from scanner import __version__
from scanner.textsafe import visible

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command ended by Ctrl-C


def console(**kwargs: Any) -> "Console":
    """A rich console that does not turn ``:name:`` in a target string into an emoji."""
    from rich.console import Console  # noqa: PLC0415

    return Console(**{"emoji": False, **kwargs})


def table(*args: Any, **kwargs: Any) -> "Table":
    from rich.table import Table  # noqa: PLC0415

    return Table(*args, **kwargs)


def progress_bar(show: bool) -> Any:
    """A progress bar on the terminal, or nothing (a context giving None)."""
    if not show:
        return contextlib.nullcontext(None)
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    return Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                    TextColumn("{task.fields[files]} files, {task.fields[elves]} ELF"),
                    TimeElapsedColumn(), console=console(stderr=True), transient=True)


_DEBUG_KEY = "flightcheck.debug"


def _note_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    """Remember --debug where :func:`debugging` and the error boundary find it: ``ctx.meta``
    is one dict shared by a command's context and its groups', so ``flightcheck --debug
    CMD`` and ``flightcheck CMD --debug`` both count."""
    if value:
        ctx.meta[_DEBUG_KEY] = True
    return value


#: ``--debug`` on a command; its value is kept in the context (see :func:`debugging`)
DEBUG_OPTION = click.option("--debug", is_flag=True, callback=_note_debug, expose_value=False,
                            help="Print tracebacks of errors.")


def debugging() -> bool:
    """Whether tracebacks were asked for, on this command or on the group."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get(_DEBUG_KEY))


def error_line(message: str) -> None:
    """One line on standard error, ``flightcheck: error: MESSAGE``, never wrapped to the
    terminal's width (scripts grep these). The message may quote target paths and names,
    so it is made visible: no escape sequence or newline of the target reaches the
    terminal. With --debug, the traceback of the exception being handled comes first (a
    refusal of our own has none)."""
    if debugging() and sys.exc_info()[1] is not None:
        traceback.print_exc()
    click.echo(f"flightcheck: error: {visible(message)}", err=True)


def fail(message: str) -> NoReturn:
    """:func:`error_line`, then exit 2."""
    error_line(message)
    sys.exit(EXIT_ERROR)


def os_error(exc: OSError) -> str:
    """An OSError as the one line the commands print: the file, then what went wrong."""
    return f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")


class Guarded(click.Group):
    """The error boundary of every command. click itself turns ``EOFError`` (which a damaged
    image's reader may raise) into a bare ``Aborted!`` with exit 1, and lets any other
    exception out as a traceback with exit 1, which a CI gate reads as "policy failed".
    Here an unexpected exception is one line and exit 2, an interrupt is one line and exit
    130, and a click error that would exit 1 exits 2; the commands' own ``sys.exit`` codes
    and click's usage errors (exit 2) pass through."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            if exc.exit_code != EXIT_FAIL:
                raise
            exc.show()
            sys.exit(EXIT_ERROR)
        except (KeyboardInterrupt, click.Abort):
            click.echo("\nflightcheck: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except click.exceptions.Exit:
            raise
        except Exception as exc:  # noqa: BLE001 - the boundary: anything unexpected is one line, exit 2
            if debugging():
                traceback.print_exc()
            hint = "" if debugging() else " (--debug shows the traceback)"
            click.echo(f"flightcheck: error: {visible(describe(exc))}{hint}", err=True)
            sys.exit(EXIT_ERROR)


def describe(exc: BaseException) -> str:
    """An unexpected exception as one line: its type, and its message when it has one."""
    message = str(exc).strip()
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


@click.group(cls=Guarded, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flightcheck")
@click.option("--debug", is_flag=True, callback=_note_debug, expose_value=False,
              help="Print tracebacks of errors, for any command.")
def main() -> None:
    """Offline compliance and audit scanner for Linux systems: every ELF file, what it
    links (resolved as the target's own loader would), in one JSON result."""

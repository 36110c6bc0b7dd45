"""The ``flightcheck`` command: a thin layer that wires the pipeline stages.

Exit codes: 0 the scan passed, 1 the policy failed, 2 the target could not be scanned
(or the command could not do its work), 130 interrupted (Ctrl-C). A crash is never 1:
every command runs inside one error boundary (:class:`~scanner.cli.app.Guarded`) that turns an unexpected
exception into one line on standard error and exit 2; ``--debug`` (on the command, or
``flightcheck --debug COMMAND``) adds the traceback.

Every string that may come from the target reaches the terminal through
:mod:`scanner.textsafe`: :func:`~scanner.textsafe.markup` for rich output (markup escaped,
control characters visible), :func:`~scanner.textsafe.visible` for plain lines.

The package: :mod:`~scanner.cli.app` (the group, the error boundary, the error line),
:mod:`~scanner.cli.options` (option groups as dataclasses), :mod:`~scanner.cli.output`
(writing a result and its reports, the summary), and one module per family of commands:
:mod:`~scanner.cli.scan` (scan, repo), :mod:`~scanner.cli.history` (history list, show),
:mod:`~scanner.cli.tools` (report, diff, domains, rules).
"""

from __future__ import annotations

import sys

from scanner.cli import fleet, history, scan, tools  # noqa: F401 - each registers its commands on main
from scanner.cli.app import EXIT_ERROR, EXIT_FAIL, EXIT_INTERRUPTED, EXIT_PASS, main
from scanner.cli.output import print_summary
from scanner.textsafe import visible

__all__ = ["EXIT_ERROR", "EXIT_FAIL", "EXIT_INTERRUPTED", "EXIT_PASS", "entry", "main", "print_summary"]


def entry() -> None:
    """The ``flightcheck`` command: the CLI, then a quick exit. A whole host's scan leaves
    millions of small objects; freeing them one by one and the interpreter's last
    garbage collection cost a rescan about a twentieth of its time, and the process
    is ending anyway. Exit handlers still run, output is flushed, files are closed."""
    import atexit  # noqa: PLC0415
    import os  # noqa: PLC0415

    try:
        main()
        code: int = 0
    except SystemExit as exc:  # kept (with its frames) until the process ends
        if isinstance(exc.code, int) or exc.code is None:
            code = exc.code or 0
        else:  # sys.exit(message): a failure, said on one visible line
            print(visible(str(exc.code)), file=sys.stderr)
            code = EXIT_ERROR
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (| head): nothing more can be said
            pass
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()

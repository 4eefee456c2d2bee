"""Run the real CLI entry point (main(), with its error protocol) and capture what it says."""

from __future__ import annotations

from compress.cli.main import main


def run_cli(args, capsys):
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err

"""Root of the ``compress`` command line.

Subcommands are imported lazily (Click's LazyGroup pattern) so ``compress --help`` does not pay
for importing torch; each command imports its work inside its function for the same reason
(``compress CMD --help``). These are the only function-level imports of the project's own modules
besides ``compress.__init__`` (the lazy API); none of them hides a cycle (``.importlinter``). Each subcommand lives in its own module and only parses options, builds a
config and calls the pipeline; errors are turned into one line and an exit code here.
"""

from __future__ import annotations

import importlib
import sys

import click

from compress.util.version import __version__

# name -> "module:attribute" of the click.Command
COMMANDS = {
    "inspect": "compress.cli.inspect_cmd:inspect",
    "prune": "compress.cli.prune_cmd:prune",
    "export": "compress.cli.export_cmd:export",
    "bench": "compress.cli.bench_cmd:bench",
    "sweep": "compress.cli.sweep_cmd:sweep",
    "demo": "compress.cli.demo_cmd:demo",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(name for name, target in COMMANDS.items() if _module_exists(target))

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None or not _module_exists(target):
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)


def _module_exists(target: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(target.split(":")[0]) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="compress")
def cli():
    """Prune, recover, export and measure PyTorch vision models, without labels."""


def user_error_types() -> tuple[type[BaseException], ...]:
    """The exception classes that mean 'the user gave something we cannot use': every error of the
    project (core, ``compress.calibrate``, ``compress.export``) derives from ``CompressError``."""
    from compress.util.errors import CompressError

    return (CompressError,)


ARGV: list[str] = []  # the arguments of this invocation (``--devices`` relaunches them under torchrun)


def _runs_work(args: list[str]) -> bool:
    """A subcommand that will compute (not a bare ``compress``, ``--help`` or ``--version``)."""
    return bool(args) and not any(a in ("-h", "--help", "--version") for a in args)


runs_work = _runs_work  # the public name (tests/test_openmp_choice.py)


def main(argv: list[str] | None = None) -> None:
    import logging

    from compress.cli.output import EMITTED

    ARGV[:] = list(sys.argv[1:] if argv is None else argv)
    EMITTED.clear()
    if _runs_work(ARGV) and "torch" not in sys.modules:  # libgomp reads its settings when torch loads
        from compress.cli.openmp import choose_wait_policy

        choose_wait_policy()

    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    try:
        with _stdout_for(ARGV):
            cli.main(args=argv, prog_name="compress", standalone_mode=False)
    except click.exceptions.Abort:
        _fail("interrupted", 130)
    except click.ClickException as err:
        err.show()
        _json_error(err.format_message(), err.exit_code, None)
        sys.exit(err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except user_error_types() as err:  # type: ignore[misc]
        import os

        rank = f"[rank {os.environ['RANK']}] " if int(os.environ.get("WORLD_SIZE", "1")) > 1 else ""
        code = getattr(err, "exit_code", 1)
        if os.environ.get("COMPRESS_DEBUG"):  # the one-line error's traceback, with what caused it
            import traceback

            traceback.print_exc()
        click.echo(f"error: {rank}{err}", err=True)
        _json_error(getattr(err, "message", str(err)), code, getattr(err, "hint", None))
        sys.exit(code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)


def _stdout_for(args: list[str]):
    """With ``--json``, stdout is the JSON's alone while the command works (:func:`compress.cli.output.json_stdout`)."""
    import contextlib

    from compress.cli.output import json_stdout

    return json_stdout() if "--json" in args else contextlib.nullcontext()


def _fail(message: str, code: int) -> None:
    click.echo(message, err=True)
    _json_error(message, code, None)
    sys.exit(code)


def _json_error(message: str, code: int, hint: str | None) -> None:
    """``--json`` promises one JSON object on stdout: on failure it is ``{"error", "hint", "exit_code"}``."""
    if "--json" in ARGV:
        from compress.cli.output import emit_json_error

        emit_json_error(message, code, hint)

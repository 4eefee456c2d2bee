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
    """The exception classes that mean 'the user gave something we cannot use'."""
    from compress.errors import CompressError

    types: list[type[BaseException]] = [CompressError]
    for module, name in (("compress.calibrate.errors", "CalibrationError"), ("compress.export.errors", "ExportError")):
        try:
            types.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(types)


ARGV: list[str] = []  # the arguments of this invocation (``--devices`` relaunches them under torchrun)


def _runs_work(args: list[str]) -> bool:
    """A subcommand that will compute (not a bare ``compress``, ``--help`` or ``--version``)."""
    return bool(args) and not any(a in ("-h", "--help", "--version") for a in args)


def main(argv: list[str] | None = None) -> None:
    import logging

    ARGV[:] = list(sys.argv[1:] if argv is None else argv)
    if _runs_work(ARGV) and "torch" not in sys.modules:  # libgomp reads its settings when torch loads
        from compress.cli.openmp import choose_wait_policy

        choose_wait_policy()

    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    try:
        cli.main(args=argv, prog_name="compress", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except user_error_types() as err:  # type: ignore[misc]
        import os

        rank = f"[rank {os.environ['RANK']}] " if int(os.environ.get("WORLD_SIZE", "1")) > 1 else ""
        click.echo(f"error: {rank}{err}", err=True)
        sys.exit(getattr(err, "exit_code", 1))
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)

"""Entry point of `nnp`. Imports no torch: each command's module loads on first use."""

from __future__ import annotations

import importlib

import click

from nnpcalc import __version__

#: command name → module under nnpcalc.cli that defines `command`
COMMANDS = {"info": "nnpcalc.cli.info"}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        return importlib.import_module(COMMANDS[name]).command


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="nnp")
def main():
    """nnpcalc: run neural-network interatomic potentials."""

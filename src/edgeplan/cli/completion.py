"""``edgeplan completion SHELL``: print the shell completion script (click's shell_completion).

The script calls ``edgeplan`` back with ``_EDGEPLAN_COMPLETE`` set; click's own machinery
answers it, so commands, options, choices and file names complete.
"""

from __future__ import annotations

import click

from ._app import command
from ._options import login_shell

PROG_NAME = "edgeplan"
COMPLETE_VAR = "_EDGEPLAN_COMPLETE"
SHELLS = ("bash", "zsh", "fish")


def completion_script(shell: str, cli: click.Command) -> str:
    """The completion script of ``cli`` (the root group) for ``shell`` (bash, zsh or fish)."""
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    if cls is None or shell not in SHELLS:
        from ..errors import InputError
        raise InputError(f"unsupported shell {shell!r}; expected one of {', '.join(SHELLS)}")
    comp = cls(cli, {}, PROG_NAME, COMPLETE_VAR)
    return comp.source()


@command("completion")
@click.argument("shell", required=False, type=click.Choice(SHELLS))
@click.pass_context
def completion_cmd(ctx: click.Context, shell: str | None) -> int:
    """Print the shell completion script for bash, zsh or fish (default: from $SHELL).

    \b
    bash: add  eval "$(edgeplan completion bash)"  to ~/.bashrc (bash 4.4 or later)
    zsh:  add  eval "$(edgeplan completion zsh)"   to ~/.zshrc
    fish: edgeplan completion fish > ~/.config/fish/completions/edgeplan.fish

    Example: edgeplan completion bash > ~/.edgeplan-complete.bash
    """
    if shell is None:
        guess = login_shell()
        if guess not in SHELLS:
            raise click.UsageError("give the shell: edgeplan completion bash|zsh|fish "
                                   f"($SHELL is {guess or 'not set'!r})")
        shell = guess
    click.echo(completion_script(shell, ctx.find_root().command), nl=False)
    return 0

"""The implementations of the ``kumeo`` subcommands, one module per group, imported only when a command runs.

Each module exposes ``run_<command>(args: argparse.Namespace) -> int``; :mod:`kumeo_iac.cli` declares the
arguments and dispatches.
"""

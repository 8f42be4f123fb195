"""``kumeo render PATH --out DIR``: the Plan of a program as files, identical bytes on every run.

Layout, per workflow (``DIR/<slug>/``)::

    plan.json                                   the workflow's Plan (what the runtime and the components read)
    kubernetes/NN-<kind>-<name>.yaml            one object per file, NN = apply order (zero-padded)
    jetstream/streams/<stream>.json             `nats stream add --config FILE`
    jetstream/consumers/<stream>/<durable>.json `nats consumer add <stream> --config FILE`
    jetstream/kv/<bucket>.json                  the KV bucket's KeyValueConfig
    jetstream/hub/streams/<stream>.json         an edge workflow's stream on the central NATS (`nats stream add`)

An edge workflow (``deployment: { profile: "edge" }``) creates its streams, consumers and KV buckets on its own leaf
server (the files above describe them); the deployer creates only ``jetstream/hub/`` on the central NATS.

The Kubernetes objects are the ones the Pulumi ``Workflow`` component registers, with the same names (one
``kumeo_iac.manifests`` step for both), the files ConfigMap included; the Secrets the pods read are not written but
listed on stdout with the command that creates each.

Platform settings (``kumeo_iac.compile.PlatformSettings``) come from ``--settings FILE`` (a JSON or YAML object of
its fields) and the flags ``--namespace``, ``--nats-url``, ``--nats-auth``, ``--nats-tls-secret``, ``--keda``,
``--image-registry`` and ``--secret ENV=SECRET[/KEY]``, which win over the file; without any, the defaults (what
`kumeo run` and the Pulumi component start from). A bad settings file or flag: ``FILE: error: …``, exit 2.

One object per file (rather than one multi-document file) keeps diffs small and lets `kubectl apply -f DIR` apply
them in file-name order. Render owns ``plan.json``, ``kubernetes/`` and ``jetstream/`` under ``DIR/<slug>`` and
replaces them on every run, so files of agents that were removed do not linger.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from kumeo_iac._cli._report import emit, emit_error
from kumeo_iac.errors import KumeoError
from kumeo_iac.manifests import RequiredSecret

__all__ = ["Rendered", "platform_settings", "render_plan", "run_render"]


class SettingsError(KumeoError):
    """A settings file or flag that does not make PlatformSettings (printed as is, exit 2)."""


_FIELD_TYPES = (("Mapping", dict, "an object"), ("Sequence", list, "a list"), ("bool", bool, "true or false"),
                ("int", int, "a whole number"), ("float", (int, float), "a number"), ("str", str, "a string"))


def _check_field(field: dataclasses.Field[Any], value: Any, where: str) -> None:
    annotation = str(field.type)
    if value is None and "None" in annotation:
        return
    for marker, kind, what in _FIELD_TYPES:
        if annotation.startswith(marker):
            wrong_bool = isinstance(value, bool) and kind is not bool
            if wrong_bool or not isinstance(value, kind):
                raise SettingsError(f"{where}: error: {field.name} must be {what}, not {value!r}")
            if isinstance(value, list) and kind is list and not all(isinstance(v, str) for v in value):
                raise SettingsError(f"{where}: error: {field.name} must be a list of strings")
            return


def _settings_file(path: Path) -> dict[str, Any]:
    from kumeo_iac.compile import PlatformSettings

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"{path}: error: {exc.strerror or exc}") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - json.JSONDecodeError, yaml.YAMLError
        raise SettingsError(f"{path}: error: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: "
                            f"{exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: error: the settings must be an object of PlatformSettings fields")
    fields = {f.name: f for f in dataclasses.fields(PlatformSettings)}
    for name, value in data.items():
        if name not in fields:
            raise SettingsError(f"{path}: error: unknown setting {name!r}; known: {', '.join(sorted(fields))}")
        _check_field(fields[name], value, str(path))
    return dict(data)


def platform_settings(args: argparse.Namespace) -> Any:
    """The PlatformSettings of ``kumeo render``: the ``--settings`` file, then the flags over it."""
    from kumeo_iac.compile import PlatformSettings

    values: dict[str, Any] = _settings_file(Path(args.settings)) if getattr(args, "settings", None) else {}
    for flag, name in (("namespace", "namespace"), ("nats_url", "nats_url"), ("image_registry", "image_registry")):
        if getattr(args, flag, None):
            values[name] = getattr(args, flag)
    if getattr(args, "nats_auth", None):
        values["nats_auth"] = True
    if getattr(args, "keda", None):
        values["keda_enabled"] = True
    if getattr(args, "nats_tls_secret", None):
        values["nats_tls"] = {**(values.get("nats_tls") or {}), "secret": args.nats_tls_secret}
    secrets = dict(values.get("secrets") or {})
    for entry in getattr(args, "secret", None) or []:
        env, sep, ref = entry.partition("=")
        if not sep or not env.strip() or not ref.strip():
            raise SettingsError(f"kumeo render: error: --secret {entry!r}: write ENV=SECRET or ENV=SECRET/KEY")
        secrets[env.strip()] = ref.strip()
    if secrets:
        values["secrets"] = secrets
    return PlatformSettings(**{**values, "for_cluster": True})  # render writes what a cluster applies


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def _dump_yaml(obj: dict[str, Any]) -> str:
    import yaml

    # libyaml's emitter is ~5x faster than PyYAML's pure-Python one (rendering 1000 agents is mostly YAML); the
    # output is deterministic either way, though the two wrap long strings differently.
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(obj, Dumper=dumper, sort_keys=True, default_flow_style=False, allow_unicode=True, width=120)


def _dump_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@dataclasses.dataclass(frozen=True)
class Rendered:
    """What `kumeo render` wrote for one workflow."""

    name: str
    namespace: str
    directory: Path
    counts: dict[str, int]
    secrets: list[RequiredSecret]


def render_plan(plan: Any, out: Path, base_dir: Path | None = None) -> list[Rendered]:
    """Write every workflow of a Plan under ``out``: the objects the Workflow component applies, with the same
    names (the files agents read are read from ``base_dir``), except the Secrets, which are listed instead."""
    from kumeo_iac.compile import Plan
    from kumeo_iac.manifests import deployed_consumers, workflow_manifests

    written = []
    for wf in plan.workflows:
        manifests = workflow_manifests(wf, base_dir)
        root = out / wf.slug
        for owned in ("kubernetes", "jetstream"):
            if (root / owned).is_dir():
                shutil.rmtree(root / owned)
        (root / "kubernetes").mkdir(parents=True, exist_ok=True)
        width = max(2, len(str(len(manifests.objects) - 1)))
        for i, obj in enumerate(manifests.objects):
            name = f"{i:0{width}d}-{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
            _write(root / "kubernetes" / name, _dump_yaml(obj))
        for stream in wf.streams:
            _write(root / "jetstream" / "streams" / f"{stream.name}.json", _dump_json(stream.config))
        consumers = deployed_consumers(wf)
        for consumer in consumers:
            _write(root / "jetstream" / "consumers" / consumer.stream / f"{consumer.durable}.json",
                   _dump_json(consumer.config))
        for kv in wf.key_values:
            _write(root / "jetstream" / "kv" / f"{kv.bucket}.json", _dump_json(kv.config))
        hub = wf.edge.hub_streams if wf.edge is not None else []
        for stream in hub:
            _write(root / "jetstream" / "hub" / "streams" / f"{stream.name}.json", _dump_json(stream.config))
        _write(root / "plan.json", Plan([wf]).to_document())
        counts = {"kubernetes": len(manifests.objects), "streams": len(wf.streams), "consumers": len(consumers),
                  "key_values": len(wf.key_values), "hub_streams": len(hub)}
        written.append(Rendered(wf.name, wf.namespace, root, counts, manifests.secrets))
    return written


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def run_render(args: argparse.Namespace) -> int:
    """Parse, validate (missing files are errors), compile and write the Plan; 0 on success, 1 on problems."""
    path = Path(args.path)
    out = Path(args.out)
    try:
        settings = platform_settings(args)
    except SettingsError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    from kumeo_iac._load import load_file

    loaded = load_file(path, strict_files=True)  # missing model and rule files are errors here
    emit(loaded.diagnostics)
    if not loaded.ok:
        print(f"{path}: {_plural(len(loaded.errors), 'error')}; nothing rendered", file=sys.stderr)
        return 1
    program = loaded.program_or_raise()
    try:
        from kumeo_iac.compile import compile_program

        plan = compile_program(program, base_dir=path.parent, settings=settings)
        if not plan.workflows:
            print(f"{path}:1:1: error: the program declares no workflow; nothing to render", file=sys.stderr)
            return 1
        written = render_plan(plan, out, path.parent)
    except KumeoError as exc:
        emit_error(exc, path)
        return 1
    except OSError as exc:
        where = exc.filename or out
        print(f"{where}: error: {exc.strerror or exc}", file=sys.stderr)
        return 1
    for r in written:
        counts = r.counts
        print(
            f"rendered {r.name}: {_plural(counts['kubernetes'], 'Kubernetes object')}, "
            f"{_plural(counts['streams'], 'stream')}, {_plural(counts['consumers'], 'consumer')}, "
            f"{_plural(counts['key_values'], 'KV bucket')} → {r.directory}"
        )
        if counts["hub_streams"]:
            print("  edge profile: the pod creates the streams, consumers and KV buckets on its own leaf server; "
                  "create the hub stream on the central NATS:\n"
                  + "\n".join(f"    nats stream add --config {f}"
                              for f in sorted((r.directory / "jetstream" / "hub" / "streams").glob("*.json"))))
        for secret in r.secrets:
            print(f"  needs Secret {secret.name} (keys: {', '.join(secret.keys)}), not rendered; create it with:\n"
                  f"    {secret.create_command(r.namespace)}")
    return 0

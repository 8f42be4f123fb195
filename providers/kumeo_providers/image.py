"""A container image as a Pulumi resource: ``Image(name, ImageArgs(context=…, repository=…))``, built (and pushed)
through the Docker Engine API with the docker SDK — Docker itself, or podman's Docker-compatible service.

The tag is the content hash of the build context (:func:`kumeo_iac.images.content_tag`: the files, the Dockerfile's
path, the build arguments and the labels), computed in ``check``. An unchanged context therefore gives no diff and no
build; a changed one gives a new tag, so the resource is replaced: the new image is built (and pushed) first, then
the old tag is removed from the local engine. Nothing is ever deleted from a registry.

Outputs:
  * ``image_name`` — ``repository:tag``; ``tag`` and ``content_hash`` (the full sha256)
  * ``image_id`` — the engine's image id (``sha256:…`` of the image config)
  * ``digest`` — the manifest digest (``sha256:…``): the registry's answer to the push; else the one the engine
    records in ``RepoDigests`` (podman does for local images, Docker does not); else the image id
  * ``repo_digest`` — ``repository@<digest>`` when a manifest digest is known; else the local image id
  * ``ref`` — what Deployments pin: ``repository:tag@<digest>`` when a manifest digest is known, else ``image_name``

``isolation`` matters only for podman: where containers cannot run (CI sandboxes), ``RUN`` steps need ``chroot``
isolation, which podman's Docker-compatible build endpoint cannot be asked for, so the build goes to podman's own
endpoint (``/libpod/build``) over the same socket. Against Docker it is ignored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)
from pulumi.runtime.rpc import is_rpc_secret, unwrap_rpc_secret

from kumeo_iac.errors import KumeoDeployError
from kumeo_iac.images import TAG_LENGTH, context_digest, context_files, context_tarball
from kumeo_providers._provider import contains_unknown

__all__ = ["IMAGE_REPLACE_FIELDS", "Image", "ImageArgs", "ImageEngine", "ImageProvider"]

#: Inputs whose change is a different image: replaced (built first, the old local tag removed after).
IMAGE_REPLACE_FIELDS: tuple[str, ...] = ("repository", "tag")
#: Inputs whose change needs the image pushed again, in place.
_UPDATE_FIELDS: tuple[str, ...] = ("push", "registry_server", "registry_username")
DEFAULT_TIMEOUT_S = 1800.0
_COMPONENT = r"[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?::[0-9]+)?(?:/{_COMPONENT})*$")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_LOG_TAIL = 25


def _plain(value: Any) -> Any:
    """A property without Pulumi's secret wrappers (nested too)."""
    if is_rpc_secret(value):
        value = unwrap_rpc_secret(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _strings(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (value or {}).items()}


def content_hash(inputs: Mapping[str, Any]) -> str:
    """The sha256 a set of (plain, known) inputs tags its image with."""
    context = inputs["context"]
    dockerfile = inputs.get("dockerfile") or "Dockerfile"
    return context_digest(
        context, dockerfile=dockerfile, build_args=_strings(inputs.get("build_args")),
        labels=_strings(inputs.get("labels")), files=context_files(context, dockerfile),
    )


# -- the engine ------------------------------------------------------------------------------------------------


class ImageEngine:
    """The docker SDK client for one engine, with the few calls the provider makes (a seam for tests)."""

    def __init__(self, docker_host: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        try:
            import docker
        except ImportError:  # pragma: no cover - depends on the environment
            raise KumeoDeployError("building images needs the docker SDK: pip install docker") from None
        try:
            if docker_host:
                self.client = docker.DockerClient(base_url=docker_host, timeout=int(timeout_s))
            else:
                self.client = docker.from_env(timeout=int(timeout_s))
            self.is_podman = any(
                c.get("Name") == "Podman Engine" for c in (self.client.version().get("Components") or [])
            )
        except docker.errors.DockerException as exc:
            where = docker_host or os.environ.get("DOCKER_HOST") or "the default socket"
            raise KumeoDeployError(
                f"cannot reach a container engine at {where}: {exc}; start Docker, or podman's API "
                "(scripts/podman-service.sh start) and set DOCKER_HOST"
            ) from None
        self.timeout_s = timeout_s

    def inspect(self, name: str) -> dict[str, Any] | None:
        import docker

        try:
            info: dict[str, Any] = self.client.api.inspect_image(name)  # type: ignore[no-untyped-call]  # unannotated
            return info
        except docker.errors.ImageNotFound:
            return None

    def build(
        self, context: str, *, tag: str, dockerfile: str, build_args: Mapping[str, str], labels: Mapping[str, str],
        isolation: str | None,
    ) -> list[str]:
        """Build ``context`` as ``tag``; return the build log's lines. Raises KumeoDeployError with the log's tail."""
        tarball = context_tarball(context, dockerfile)
        try:
            if self.is_podman and isolation:
                stream = self._podman_build(tarball, tag, dockerfile, build_args, labels, isolation)
            else:
                stream = self.client.api.build(
                    fileobj=tarball, custom_context=True, tag=tag, dockerfile=dockerfile, buildargs=dict(build_args),
                    labels=dict(labels), rm=True, forcerm=True, pull=False, decode=True,
                )
            return _consume(stream, f"building {tag}")
        finally:
            tarball.close()

    def _podman_build(
        self, tarball: Any, tag: str, dockerfile: str, build_args: Mapping[str, str], labels: Mapping[str, str],
        isolation: str,
    ) -> Iterator[dict[str, Any]]:
        # libpod's build endpoint goes through APIClient's private helpers, which types-docker does not declare
        api: Any = self.client.api
        params = {
            "t": tag, "dockerfile": dockerfile, "buildargs": json.dumps(dict(build_args)),
            "labels": json.dumps(dict(labels)), "isolation": isolation, "rm": "true", "forcerm": "true",
            "layers": "true",
        }
        response = api._post(
            api._url("/libpod/build"), params=params, data=tarball, headers={"Content-Type": "application/x-tar"},
            stream=True, timeout=self.timeout_s,
        )
        api._raise_for_status(response)
        stream: Iterator[dict[str, Any]] = api._stream_helper(response, decode=True)
        return stream

    def push(self, repository: str, tag: str, auth: Mapping[str, str] | None) -> str | None:
        """Push ``repository:tag``; return the manifest digest the registry answered with (None if it said none)."""
        stream = self.client.api.push(repository, tag=tag, auth_config=dict(auth) if auth else None, stream=True,
                                      decode=True)
        digest: str | None = None
        for chunk in _checked(stream, f"pushing {repository}:{tag}", []):
            aux = chunk.get("aux") or {}
            if isinstance(aux, Mapping) and _DIGEST.fullmatch(str(aux.get("Digest", ""))):
                digest = str(aux["Digest"])
            elif digest is None:
                found = _DIGEST.search(str(chunk.get("status", "")))
                if found and "digest" in str(chunk.get("status", "")):
                    digest = found.group(0)
        return digest

    def remove(self, name: str) -> None:
        import docker

        with contextlib.suppress(docker.errors.APIError):  # in use, already gone: an untag is best effort
            self.client.api.remove_image(name, noprune=False)


def _checked(stream: Any, what: str, log: list[str]) -> Iterator[Mapping[str, Any]]:
    for chunk in stream:
        if not isinstance(chunk, Mapping):
            continue
        text = chunk.get("stream") or chunk.get("status")
        if text:
            log.extend(line for line in str(text).splitlines() if line.strip())
        error = chunk.get("error") or (chunk.get("errorDetail") or {}).get("message")
        if error:
            tail = "\n".join(log[-_LOG_TAIL:])
            raise KumeoDeployError(f"{what} failed: {str(error).strip()}\n{tail}".rstrip())
        yield chunk


def _consume(stream: Any, what: str) -> list[str]:
    log: list[str] = []
    for _ in _checked(stream, what, log):
        pass
    return log


# -- the provider ----------------------------------------------------------------------------------------------


class ImageProvider(ResourceProvider):
    """Builds a build context into ``repository:<content tag>`` and pushes it if asked (a Pulumi dynamic provider)."""

    #: How the provider reaches an engine; tests put a fake here.
    engine_factory = ImageEngine

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs = dict(news)
        failures: list[CheckFailure] = []
        plain = _plain(inputs)
        repository = plain.get("repository")
        if not repository:
            failures.append(CheckFailure("repository", "an Image needs a repository, e.g. 'ghcr.io/acme/agent'"))
        elif isinstance(repository, str) and not contains_unknown(repository) and not _REPOSITORY.match(repository):
            failures.append(CheckFailure(
                "repository", f"{repository!r} is not a repository name (lower-case, no tag: 'registry/name')"))
        context = plain.get("context")
        dockerfile = plain.get("dockerfile") or "Dockerfile"
        if not context:
            failures.append(CheckFailure("context", "an Image needs a context directory (Dockerfile and its files)"))
        elif not contains_unknown(context) and not contains_unknown(dockerfile):
            if not os.path.isdir(context):
                failures.append(CheckFailure("context", f"build context {context!r} is not a directory"))
            elif not os.path.isfile(os.path.join(context, dockerfile)):
                failures.append(CheckFailure("dockerfile", f"no {dockerfile} in the build context {context!r}"))
        for key in ("build_args", "labels"):
            value = plain.get(key)
            if value is not None and not contains_unknown(value) and not isinstance(value, Mapping):
                failures.append(CheckFailure(key, f"expected an object of strings, got {value!r}"))
        if plain.get("push") and not failures and isinstance(repository, str) and "/" not in repository:
            failures.append(
                CheckFailure("repository", f"pushing needs a registry in the repository: 'registry/{repository}'"))
        inputs["dockerfile"] = dockerfile if not contains_unknown(dockerfile) else inputs.get("dockerfile")
        fields = ("context", "dockerfile", "build_args", "labels")
        if not failures and not any(contains_unknown(plain.get(k)) for k in fields):
            digest = content_hash(plain)
            inputs["content_hash"] = digest
            inputs["tag"] = digest[:TAG_LENGTH]
        return CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        olds, news = _plain(olds), _plain(news)
        replaces: list[str] = []
        changed = False
        for key in IMAGE_REPLACE_FIELDS:
            if news.get(key) is None or contains_unknown(news.get(key)) or olds.get(key) != news.get(key):
                changed = True
                replaces.append(key)
        old_registry, new_registry = olds.get("registry") or {}, news.get("registry") or {}
        old: Any
        new: Any
        for key in _UPDATE_FIELDS:
            if key == "push":
                old, new = bool(olds.get("push")), bool(news.get("push"))
            else:
                field = key.removeprefix("registry_")
                old, new = old_registry.get(field), new_registry.get(field)
            if old != new or contains_unknown(new):
                changed = True
        # A push that never happened (the image was built while push was off) is also something to do.
        if news.get("push") and not olds.get("pushed"):
            changed = True
        return DiffResult(changes=changed, replaces=replaces, stables=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._apply(_plain(props))
        return CreateResult(outs["image_name"], outs)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._apply(_plain(news)))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        plain = _plain(props)
        name = plain.get("image_name") or id_
        engine = self._engine(plain)
        info = engine.inspect(name)
        if info is None:
            if plain.get("pushed"):
                return ReadResult(id_, props)  # in the registry still; the local copy is not the resource
            return ReadResult("", {})
        outs = dict(props)
        outs.update(self._identity(plain, info, plain.get("digest") if plain.get("pushed") else None))
        return ReadResult(id_, outs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        plain = _plain(props)
        name = plain.get("image_name")
        if not name:
            return
        try:
            engine = self._engine(plain)
        except KumeoDeployError:
            return  # no engine here any more: nothing local to untag
        engine.remove(name)

    # -- internals -------------------------------------------------------------------------------------------

    def _engine(self, inputs: Mapping[str, Any]) -> ImageEngine:
        return self.engine_factory(inputs.get("docker_host"), float(inputs.get("timeout_s") or DEFAULT_TIMEOUT_S))

    def _apply(self, inputs: dict[str, Any]) -> dict[str, Any]:
        repository = inputs["repository"]
        dockerfile = inputs.get("dockerfile") or "Dockerfile"
        digest = content_hash(inputs)
        tag = digest[:TAG_LENGTH]
        if inputs.get("tag") and inputs["tag"] != tag:
            raise KumeoDeployError(
                f"the build context {inputs['context']!r} changed while Pulumi was running (tag {inputs['tag']} was "
                f"planned, the files now hash to {tag}); run the update again"
            )
        name = f"{repository}:{tag}"
        engine = self._engine(inputs)
        info = engine.inspect(name)
        built = info is None
        if info is None:  # the tag is the content: an image already holding it is this build's result
            engine.build(
                inputs["context"], tag=name, dockerfile=dockerfile, build_args=_strings(inputs.get("build_args")),
                labels=_strings(inputs.get("labels")), isolation=inputs.get("isolation"),
            )
            info = engine.inspect(name)
            if info is None:
                raise KumeoDeployError(f"the engine reported {name} built, but does not know it")
        pushed_digest: str | None = None
        if inputs.get("push"):
            registry = inputs.get("registry") or {}
            auth = None
            if registry.get("username"):
                auth = {"username": registry["username"], "password": registry.get("password") or ""}
                if registry.get("server"):
                    auth["serveraddress"] = registry["server"]
            pushed_digest = engine.push(repository, tag, auth)
            if pushed_digest is None:
                info = engine.inspect(name) or info
        outs = {
            k: inputs[k]
            for k in ("context", "dockerfile", "repository", "build_args", "labels", "push", "isolation",
                      "docker_host", "timeout_s")
            if inputs.get(k) is not None
        }
        registry = inputs.get("registry")
        if registry:
            outs["registry"] = {k: v for k, v in registry.items() if k != "password"}
        outs.update({"content_hash": digest, "tag": tag, "built": built})
        outs.update(self._identity(inputs, info, pushed_digest))
        outs["pushed"] = bool(inputs.get("push"))
        return outs

    def _identity(self, inputs: Mapping[str, Any], info: Mapping[str, Any], pushed: str | None) -> dict[str, Any]:
        repository = inputs["repository"]
        tag = inputs.get("tag") or str(inputs.get("image_name", ":")).rsplit(":", 1)[-1]
        name = f"{repository}:{tag}"
        image_id = str(info.get("Id") or "")
        if image_id and not image_id.startswith("sha256:"):
            image_id = f"sha256:{image_id}"
        manifest = pushed or _repo_digest(repository, info.get("RepoDigests") or [])
        return {
            "image_name": name,
            "image_id": image_id,
            "digest": manifest or image_id,
            "repo_digest": f"{repository}@{manifest}" if manifest else image_id,
            "ref": f"{name}@{manifest}" if manifest else name,
        }


def _repo_digest(repository: str, repo_digests: list[str]) -> str | None:
    """The manifest digest the engine records for ``repository`` (podman names local images ``localhost/…``)."""
    candidates: list[tuple[int, str]] = []
    for entry in repo_digests:
        name, _, digest = str(entry).partition("@")
        if not _DIGEST.fullmatch(digest):
            continue
        if name == repository:
            candidates.append((0, digest))
        elif name.endswith("/" + repository) or repository.endswith("/" + name):
            candidates.append((1, digest))
    return min(candidates)[1] if candidates else None


# -- the resource ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ImageArgs:
    """The inputs of an :class:`Image`: a build context directory and where the image goes."""

    #: The build context (Dockerfile + files), e.g. one ``kumeo_iac.images.assemble_context`` wrote.
    context: pulumi.Input[str]
    #: ``registry/name`` without a tag; the tag is the context's content hash.
    repository: pulumi.Input[str]
    #: The Dockerfile's path inside the context.
    dockerfile: pulumi.Input[str] = "Dockerfile"
    build_args: pulumi.Input[Mapping[str, str]] | None = None
    #: Labels added to the image (besides the Dockerfile's own).
    labels: pulumi.Input[Mapping[str, str]] | None = None
    #: Push ``repository:tag`` after building.
    push: pulumi.Input[bool] = False
    #: Registry login: ``{"server": …, "username": …, "password": …}``; the password is kept a secret.
    registry: pulumi.Input[Mapping[str, Any]] | None = None
    #: ``chroot`` to build through podman where containers cannot run (ignored by Docker).
    isolation: pulumi.Input[str] | None = None
    #: The engine's API, e.g. ``unix:///run/kumeo/podman.sock``; default ``$DOCKER_HOST``.
    docker_host: pulumi.Input[str] | None = None
    timeout_s: pulumi.Input[float] | None = None

    @classmethod
    def from_mapping(cls, args: Mapping[str, Any]) -> ImageArgs:
        return cls(**dict(args))

    def to_props(self) -> dict[str, Any]:
        registry = self.registry
        if isinstance(registry, Mapping) and registry.get("password") is not None:
            registry = {**registry, "password": pulumi.Output.secret(registry["password"])}
        return {
            "context": self.context,
            "repository": self.repository,
            "dockerfile": self.dockerfile,
            "build_args": self.build_args,
            "labels": self.labels,
            "push": self.push,
            "registry": registry,
            "isolation": self.isolation,
            "docker_host": self.docker_host,
            "timeout_s": self.timeout_s,
        }


class Image(Resource):
    """A container image built from a context directory, tagged with the context's content hash, pushed if asked."""

    image_name: pulumi.Output[str]
    tag: pulumi.Output[str]
    content_hash: pulumi.Output[str]
    image_id: pulumi.Output[str]
    digest: pulumi.Output[str]
    repo_digest: pulumi.Output[str]
    ref: pulumi.Output[str]
    pushed: pulumi.Output[bool]

    def __init__(
        self,
        resource_name: str,
        args: ImageArgs | Mapping[str, Any],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        args = args if isinstance(args, ImageArgs) else ImageArgs.from_mapping(args)
        props = args.to_props()
        outputs = ("image_name", "tag", "content_hash", "image_id", "digest", "repo_digest", "ref", "pushed", "built")
        props.update(dict.fromkeys(outputs))
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["registry"]))
        super().__init__(ImageProvider(), resource_name, props, opts)

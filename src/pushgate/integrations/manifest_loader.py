"""Reading manifest integrations from `PUSHGATE_MANIFEST_DIRS` at start-up.

Each listed directory holds one sub-directory per integration, as `integrations/` of
LaunchDarkly's integration-framework repository does: `<key>/manifest.json`, its templates and
its icons. A sub-directory whose manifest declares `capabilities.auditLogEventsHook` becomes an
integration with the directory's name as its key; others are ignored (they describe other
capabilities). A manifest that breaks a rule, or needs what pushgate cannot serve, is refused
with one log line (`manifest.refused`, naming the file and the problem) and the others load.
A built-in integration keeps its key: a manifest with the same key is skipped with one warning
(`manifest.shadowed`, naming both); of two manifests with one key, the first listed wins.

Before a manifest is accepted its templates are compiled and rehearsed: each is rendered for a
sample event of its kind, with sample form values, as the framework's own test suite does.
A template that fails there (an unknown helper, invalid JSON from a JSON template, an empty
`validation` template) refuses the manifest at start rather than failing deliveries later.
The samples are plain (no quotes or backslashes in their texts), like the framework's: a
template that breaks only on unusual text still loads, and such an event's delivery fails
with the description of the invalid JSON.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from pushgate.errors import DeliveryError, DeliverySkipped
from pushgate.events import build_context, parse_entry, validation_entry
from pushgate.handlebars import Template, TemplateError, compile_template, is_json_template
from pushgate.integrations.base import HEADER_NAME, Integration, IntegrationConfig
from pushgate.integrations.manifest import (
    BodyTemplate,
    ManifestIntegration,
    ManifestSpec,
    manifest_integration,
)
from pushgate.integrations.manifest_schema import (
    CheckedManifest,
    Icons,
    ManifestError,
    has_audit_log_hook,
    parse_manifest,
)

log = structlog.get_logger("pushgate.manifests")

MANIFEST_FILE = "manifest.json"
# Bounds on what start-up reads: the framework's largest manifest is ~40 KB, its largest
# template ~10 KB, its icons a few KB each.
MAX_MANIFEST_BYTES = 1_048_576
MAX_TEMPLATE_BYTES = 262_144
MAX_ICON_BYTES = 65_536
# The key appears in API paths and the UI: letters, digits, `-`, `_` and `.`, as the
# framework's directory names are.
KEY_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
MAX_KEY_LENGTH = 64
# Set by the HTTP connection itself; a manifest may not write them.
CONNECTION_HEADERS = frozenset({"content-length", "host", "transfer-encoding", "connection"})
_SAMPLE_DATE_MS = 1_700_000_000_000


def load_manifests(
    directories: Sequence[Path], builtins: Mapping[str, Integration[Any]]
) -> list[ManifestIntegration]:
    """Every manifest integration under `directories`, in order; refusals are logged."""
    loaded: dict[str, ManifestIntegration] = {}
    refused = ignored = 0
    for folder in _integration_folders(directories):
        path, key = folder / MANIFEST_FILE, folder.name
        try:
            raw = _read_json(path)
            if not has_audit_log_hook(raw):
                ignored += 1
                continue
            if key in builtins:
                log.warning(
                    "manifest.shadowed",
                    file=str(path),
                    integration=key,
                    builtin=builtins[key].name,
                    reason=f"the built-in {builtins[key].name} integration keeps the key {key}",
                )
                continue
            if key in loaded:
                log.warning(
                    "manifest.shadowed",
                    file=str(path),
                    integration=key,
                    kept=loaded[key].spec.source,
                    reason=f"another manifest with the key {key} was listed first",
                )
                continue
            loaded[key] = load_manifest(folder, raw)
        except ManifestError as error:
            refused += 1
            log.error("manifest.refused", file=str(path), problem=str(error))
    if loaded or refused:
        log.info("manifests.loaded", integrations=sorted(loaded), refused=refused, ignored=ignored)
    return list(loaded.values())


def load_manifest(folder: Path, raw: object | None = None) -> ManifestIntegration:
    """The manifest integration in `folder` (its key is the folder's name); `ManifestError`."""
    key = folder.name
    if not set(key) <= KEY_CHARACTERS or not 0 < len(key) <= MAX_KEY_LENGTH:
        raise ManifestError(
            f"the directory name {key!r} is not a valid integration key (letters, digits, "
            f"-, _ and ., at most {MAX_KEY_LENGTH} characters)"
        )
    path = folder / MANIFEST_FILE
    checked = parse_manifest(_read_json(path) if raw is None else raw)
    endpoint = checked.endpoint
    where = "capabilities.auditLogEventsHook"
    headers = []
    for index, header in enumerate(endpoint.headers):
        place = f"{where}.endpoint.headers[{index}]"
        if not HEADER_NAME.fullmatch(header.name):
            raise ManifestError(f"{place}.name: {header.name!r} is not a valid header name")
        if header.name.lower() in CONNECTION_HEADERS:
            raise ManifestError(f"{place}.name: {header.name} is set by the HTTP connection")
        headers.append((header.name, _compile(header.value, f"{place}.value")))
    bodies = {
        kind: BodyTemplate(
            kind,
            relative,
            _compile(_read_text(folder, relative, f"{where}.templates.{kind}"), relative),
            is_json_template(relative),
        )
        for kind, relative in checked.manifest.hook.templates.paths().items()
    }
    spec = ManifestSpec(
        key=key,
        source=str(path),
        checked=checked,
        url=_compile(endpoint.url, f"{where}.endpoint.url"),
        headers=tuple(headers),
        bodies=bodies,
        icon=_icon(folder, checked.manifest.icons),
    )
    integration = manifest_integration(spec)
    _rehearse(integration, checked)
    return integration


def _integration_folders(directories: Sequence[Path]) -> Iterator[Path]:
    for directory in directories:
        if (directory / MANIFEST_FILE).is_file():
            log.warning(
                "manifest.directory_is_an_integration",
                directory=str(directory),
                hint="list the directory that holds integration directories, e.g. its parent",
            )
        try:
            folders = sorted(p for p in directory.iterdir() if (p / MANIFEST_FILE).is_file())
        except OSError as error:
            log.error("manifest.unreadable_directory", directory=str(directory), error=str(error))
            continue
        yield from folders


def _compile(source: str, where: str) -> Template:
    try:
        return compile_template(source, name=where)
    except TemplateError as error:
        raise ManifestError(str(error)) from None


def _read_json(path: Path) -> object:
    try:
        return json.loads(_read_bounded(path, MAX_MANIFEST_BYTES, MANIFEST_FILE))
    except ValueError as error:
        raise ManifestError(f"not valid JSON: {error}") from None


def _read_bounded(path: Path, limit: int, where: str) -> str:
    try:
        with path.open("rb") as file:
            data = file.read(limit + 1)
    except OSError as error:
        raise ManifestError(f"{where}: cannot be read ({error.strerror})") from None
    if len(data) > limit:
        raise ManifestError(f"{where}: larger than {limit:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ManifestError(f"{where}: not UTF-8 text") from None


def _inside(folder: Path, relative: str, where: str) -> Path:
    """`folder / relative`, refused when it leads outside `folder` or is not a file."""
    path = (folder / relative).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise ManifestError(f"{where}: {relative!r} leads outside the integration's directory")
    if not path.is_file():
        raise ManifestError(f"{where}: {relative} does not exist")
    return path


def _read_text(folder: Path, relative: str, where: str) -> str:
    return _read_bounded(_inside(folder, relative, where), MAX_TEMPLATE_BYTES, where)


def _icon(folder: Path, icons: Icons | None) -> str | None:
    """The square logo as a `data:` URI (the UI's pages load images only from themselves)."""
    if icons is None:
        return None
    path = _inside(folder, icons.square, "icons.square")
    try:
        with path.open("rb") as file:
            data = file.read(MAX_ICON_BYTES + 1)
    except OSError as error:
        raise ManifestError(f"icons.square: cannot be read ({error.strerror})") from None
    if len(data) > MAX_ICON_BYTES:
        raise ManifestError(f"icons.square: larger than {MAX_ICON_BYTES:,} bytes")
    return "data:image/svg+xml;base64," + base64.b64encode(data).decode()


def _rehearse(integration: ManifestIntegration, checked: CheckedManifest) -> None:
    """Render every template for a sample event of its kind; `ManifestError` when one fails."""
    config = _sample_config(integration, checked)
    variables = integration.variables(config)
    samples = [
        (kind, parse_entry(entry, now_ms=_SAMPLE_DATE_MS)) for kind, entry in _SAMPLES.items()
    ]
    samples.append(("validation", validation_entry(_SAMPLE_DATE_MS)))
    for kind, entry in samples:
        event = build_context(entry)
        context = event.template_context()
        chosen = integration.template_for(event)
        try:
            integration.render_body(event, context, variables)
            scope = {**variables, "context": context}
            integration.spec.url.render(scope)
            for _, template in integration.spec.headers:
                template.render(scope)
        except DeliverySkipped:
            if kind == "validation" and chosen is not None and chosen.kind == "validation":
                raise ManifestError(
                    f"{chosen.path}: the validation template renders nothing for the test event"
                ) from None
        except DeliveryError as error:
            raise ManifestError(f"{error.description} (for a sample {kind} event)") from None
        except TemplateError as error:
            raise ManifestError(f"{error} (for a sample {kind} event)") from None


def _sample_config(integration: ManifestIntegration, checked: CheckedManifest) -> IntegrationConfig:
    """Form values to rehearse with: defaults, else what the framework's tests use."""
    values: dict[str, Any] = {}
    for variable in checked.manifest.formVariables:
        if variable.defaultValue is not None and variable.defaultValue != "":
            values[variable.key] = variable.defaultValue
        elif variable.type == "boolean":
            values[variable.key] = True
        elif variable.type == "enum":
            values[variable.key] = (variable.allowedValues or [""])[0]
        elif variable.type == "uri":
            values[variable.key] = f"https://{variable.key}.example.com"
        else:
            values[variable.key] = variable.key
    return integration.config_model.model_validate(values)


_MEMBER = {"_id": "5f0000000000000000000001", "email": "ana@example.com", "firstName": "Ana"}
_SAMPLES: dict[str, dict[str, Any]] = {
    "flag": {
        "kind": "flag",
        "name": "New checkout",
        "accesses": [{"action": "updateOn", "resource": "proj/web:env/production:flag/checkout"}],
        "titleVerb": "turned on the flag",
        "description": "* Turned the flag on\n* Added the tag `checkout`",
        "comment": "Rolling out to everyone",
        "member": _MEMBER,
        "_links": {"site": {"href": "https://app.example.com/web/production/features/checkout"}},
        "customProperties": {"team": {"name": "Team", "values": ["payments"]}},
        "tags": ["checkout"],
    },
    "project": {
        "kind": "project",
        "name": "Web shop",
        "accesses": [{"action": "updateName", "resource": "proj/web"}],
        "member": _MEMBER,
    },
    "environment": {
        "kind": "environment",
        "name": "Production",
        "accesses": [{"action": "updateName", "resource": "proj/web:env/production"}],
        "member": _MEMBER,
    },
    "member": {
        "kind": "member",
        "name": "Bo",
        "accesses": [{"action": "updateRole", "resource": "member/5f0000000000000000000002"}],
        "member": _MEMBER,
    },
    "segment": {
        "kind": "segment",
        "name": "Beta users",
        "accesses": [{"action": "updateRules", "resource": "proj/web:env/production:segment/beta"}],
        "member": _MEMBER,
    },
}

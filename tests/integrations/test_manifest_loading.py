"""Loading manifests at start: what is refused (one log line naming file and problem), what
is skipped (a built-in keeps its key) and what is ignored (other capabilities)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from pushgate.integrations import default_catalog
from pushgate.integrations.manifest import ManifestIntegration
from pushgate.integrations.webhook import Webhook
from pushgate.settings import Settings

from .test_manifests import CHANGEBOARD

Mutation = Callable[[dict[str, Any], Path], None]


def copy_changeboard(root: Path, name: str = "changeboard") -> Path:
    folder = root / name
    shutil.copytree(CHANGEBOARD, folder)
    return folder


def mutate(folder: Path, change: Mutation) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest, folder)
    path.write_text(json.dumps(manifest))


def hook(manifest: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = manifest["capabilities"]["auditLogEventsHook"]
    return result


def variable(manifest: dict[str, Any], key: str) -> dict[str, Any]:
    return next(v for v in manifest["formVariables"] if v["key"] == key)


def set_in(path: str, value: Any) -> Mutation:
    def change(manifest: dict[str, Any], _: Path) -> None:
        *parents, last = path.split(".")
        target: Any = manifest
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[last] = value

    return change


def template(name: str, source: str) -> Mutation:
    def change(manifest: dict[str, Any], folder: Path) -> None:
        (folder / "templates" / name).write_text(source)

    return change


REFUSALS: list[tuple[str, Mutation, str]] = [
    ("unknown property", set_in("homepage", "x"), "homepage: not a property the framework knows"),
    (
        "key too long",
        set_in("formVariables.0.key", "k" * 21),
        "formVariables[0].key: String should have at most 20 characters",
    ),
    (
        "oauth variable",
        set_in("formVariables.2.type", "oauth"),
        "formVariables[2] (board): type 'oauth' is not supported",
    ),
    (
        "dynamicEnum variable",
        set_in("formVariables.2.type", "dynamicEnum"),
        "type 'dynamicEnum' is not supported: its choices come from a request LaunchDarkly makes",
    ),
    (
        "generated variable",
        set_in("formVariables.2.type", "generated"),
        "type 'generated' is not supported",
    ),
    ("unknown type", set_in("formVariables.2.type", "number"), "type 'number' is not a form"),
    ("requires OAuth", set_in("requiresOAuth", True), "requiresOAuth: the integration"),
    (
        "custom delivery",
        set_in("capabilities.auditLogEventsHook.deliveryMethod", "custom"),
        "deliveryMethod: 'custom' is delivered by LaunchDarkly's own code",
    ),
    (
        "default without optional",
        set_in("formVariables.2.defaultValue", "ops"),
        "formVariables[2]: a defaultValue is only valid when isOptional is true",
    ),
    (
        "optional without default",
        set_in("formVariables.2.isOptional", True),
        "formVariables[2]: an optional variable needs a defaultValue",
    ),
    (
        "secret boolean",
        set_in("formVariables.4.isSecret", True),
        "formVariables[4]: only string variables can be secrets",
    ),
    (
        "enum without values",
        set_in("formVariables.3.allowedValues", []),
        "formVariables[3]: an enum needs allowedValues",
    ),
    (
        "hmac secret not secret",
        set_in(
            "capabilities.auditLogEventsHook.endpoint.hmacSignature.hmacSecretFormVariableKey",
            "board",
        ),
        "hmacSecretFormVariableKey: 'board' must name a secret string variable",
    ),
    (
        "bad method",
        set_in("capabilities.auditLogEventsHook.endpoint.method", "SEND"),
        "capabilities.auditLogEventsHook.endpoint.method: Input should be",
    ),
    (
        "missing template file",
        set_in("capabilities.auditLogEventsHook.templates.flag", "templates/nope.json.hbs"),
        "templates.flag: templates/nope.json.hbs does not exist",
    ),
    (
        "template outside the directory",
        set_in("capabilities.auditLogEventsHook.templates.flag", "../../manifest.json"),
        "leads outside the integration's directory",
    ),
    ("template syntax", template("flag.json.hbs", "{{#if name}}x"), "templates/flag.json.hbs: "),
    (
        "unknown helper",
        template("default.json.hbs", '{"t": "{{shout name}}"}'),
        'Missing helper: "shout" (for a sample environment event)',
    ),
    (
        "json template renders invalid json",
        template("member.json.hbs", '{"t": {{{name}}}}'),
        "the member template (templates/member.json.hbs) rendered invalid JSON",
    ),
    (
        "empty validation template",
        template("validation.json.hbs", "{{#if nothing}}{}{{/if}}"),
        "the validation template renders nothing for the test event",
    ),
    (
        "bad default policy",
        set_in("capabilities.auditLogEventsHook.defaultPolicy", [{"effect": "maybe"}]),
        "capabilities.auditLogEventsHook.defaultPolicy[0].effect",
    ),
    (
        "header set by the connection",
        set_in("capabilities.auditLogEventsHook.endpoint.headers.0.name", "Host"),
        "headers[0].name: Host is set by the HTTP connection",
    ),
    (
        "missing icon",
        set_in("icons.square", "assets/gone.svg"),
        "icons.square: assets/gone.svg does not exist",
    ),
    (
        "no templates",
        set_in("capabilities.auditLogEventsHook.templates", {}),
        "at least one template",
    ),
]


@pytest.mark.parametrize(
    ("change", "problem"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_an_invalid_manifest_is_refused_with_one_line_and_the_others_load(
    tmp_path: Path, change: Mutation, problem: str
) -> None:
    broken = copy_changeboard(tmp_path, "broken")
    mutate(broken, change)
    copy_changeboard(tmp_path, "changeboard")

    with capture_logs() as logs:
        catalog = default_catalog([tmp_path])

    refusals = [entry for entry in logs if entry["event"] == "manifest.refused"]
    assert len(refusals) == 1
    assert refusals[0]["file"] == str(broken / "manifest.json")
    assert problem in refusals[0]["problem"]
    assert "broken" not in catalog
    assert isinstance(catalog.get("changeboard"), ManifestIntegration)


def test_a_manifest_that_is_not_json_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("{nope")

    with capture_logs() as logs:
        default_catalog([tmp_path])

    [refusal] = [entry for entry in logs if entry["event"] == "manifest.refused"]
    assert refusal["problem"].startswith("not valid JSON: ")


def test_a_directory_name_that_is_no_integration_key_is_refused(tmp_path: Path) -> None:
    copy_changeboard(tmp_path, "change board")

    with capture_logs() as logs:
        catalog = default_catalog([tmp_path])

    [refusal] = [entry for entry in logs if entry["event"] == "manifest.refused"]
    assert "'change board' is not a valid integration key" in refusal["problem"]
    assert len([i for i in catalog if isinstance(i, ManifestIntegration)]) == 0


def test_a_builtin_keeps_its_key_and_the_manifest_is_skipped_with_one_warning(
    tmp_path: Path,
) -> None:
    folder = copy_changeboard(tmp_path, "webhook")

    with capture_logs() as logs:
        catalog = default_catalog([tmp_path])

    [warning] = [entry for entry in logs if entry["event"] == "manifest.shadowed"]
    assert warning["log_level"] == "warning"
    assert warning["file"] == str(folder / "manifest.json")
    assert warning["integration"] == "webhook"
    assert warning["builtin"] == "Webhook"
    assert isinstance(catalog.get("webhook"), Webhook)


def test_of_two_manifests_with_one_key_the_first_listed_wins(tmp_path: Path) -> None:
    first = copy_changeboard(tmp_path / "a")
    second = copy_changeboard(tmp_path / "b")
    mutate(second, set_in("name", "Changeboard (other)"))

    with capture_logs() as logs:
        catalog = default_catalog([tmp_path / "a", tmp_path / "b"])

    [warning] = [entry for entry in logs if entry["event"] == "manifest.shadowed"]
    assert warning["file"] == str(second / "manifest.json")
    assert warning["kept"] == str(first / "manifest.json")
    assert catalog.get("changeboard").name == "Changeboard"


def test_manifests_of_other_capabilities_are_ignored_quietly(tmp_path: Path) -> None:
    folder = tmp_path / "flag-links"
    folder.mkdir()
    (folder / "manifest.json").write_text(
        json.dumps({"name": "Links only", "capabilities": {"flagLink": {}}})
    )

    with capture_logs() as logs:
        catalog = default_catalog([tmp_path])

    assert "flag-links" not in catalog
    assert [e for e in logs if e["event"] in ("manifest.refused", "manifest.shadowed")] == []


def test_manifest_integrations_join_the_builtins_in_name_order(tmp_path: Path) -> None:
    copy_changeboard(tmp_path)

    names = [integration.name for integration in default_catalog([tmp_path])]

    assert "Changeboard" in names
    assert names == sorted(names, key=str.lower)


def test_manifest_dirs_setting_is_comma_separated_and_must_exist(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()

    settings = Settings(manifest_dirs=f"{tmp_path / 'a'}, {tmp_path / 'b'}")

    assert settings.manifest_dirs == (tmp_path / "a", tmp_path / "b")
    with pytest.raises(ValidationError, match="is not a directory"):
        Settings(manifest_dirs=str(tmp_path / "missing"))


def test_the_worked_example_of_the_docs_loads_without_refusal() -> None:
    with capture_logs() as logs:
        catalog = default_catalog([CHANGEBOARD.parent])

    assert "changeboard" in catalog
    assert [e for e in logs if e["event"] == "manifest.refused"] == []


def test_listing_an_integration_directory_itself_warns_to_list_its_parent(tmp_path: Path) -> None:
    folder = copy_changeboard(tmp_path)

    with capture_logs() as logs:
        catalog = default_catalog([folder])

    [warning] = [e for e in logs if e["event"] == "manifest.directory_is_an_integration"]
    assert warning["directory"] == str(folder)
    assert "changeboard" not in catalog

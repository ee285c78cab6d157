"""The Edit configuration panel: add, save, validate and delete configurations.

Every change goes through the domain functions the API uses (`configurations.create`,
`configurations.patch`, `validation.validate`, the store's `delete`), so a configuration is
checked the same way wherever it is changed. A failed save shows the page again with what was
typed and each error beside its field.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from pushgate import configurations
from pushgate.api.deps import RuntimeDep
from pushgate.configurations import HealthView, configuration_json, health_of, open_config
from pushgate.errors import Conflict, InvalidRequest
from pushgate.integrations.base import Integration, IntegrationConfig, is_masked
from pushgate.policy import parse_statements
from pushgate.replay import ReplayWindow, replay
from pushgate.runtime import Runtime
from pushgate.store import ConfigurationRow
from pushgate.validation import validate
from pushgate.web.forms import ConfigurationForm, field_errors
from pushgate.web.pages import INTEGRATIONS, integrations_page
from pushgate.web.routing import WebRoute, see_other
from pushgate.web.session import SessionDep, WriterDep
from pushgate.web.templating import renderer

router = APIRouter(route_class=WebRoute, include_in_schema=False)
_CHANGED = (
    "Someone else saved this configuration after you opened it. Save again to replace their "
    "changes with yours, or close the panel to see theirs."
)


@dataclass(frozen=True)
class Panel:
    """What the Edit configuration panel shows."""

    integration: Integration[Any]
    fields: list[dict[str, Any]]
    form: ConfigurationForm
    configuration_id: str | None = None
    stored_secrets: frozenset[str] = frozenset()
    errors: dict[str, str] = field(default_factory=dict)
    form_errors: list[str] = field(default_factory=list)
    health: HealthView | None = None  # a saved configuration's, shown at the top

    @property
    def heading(self) -> str:
        """`Add configuration` or `Edit configuration`."""
        return "Add configuration" if self.configuration_id is None else "Edit configuration"

    @property
    def base(self) -> str:
        """The URL under which this configuration's actions live."""
        key = self.integration.key
        if self.configuration_id is None:
            return f"{INTEGRATIONS}/{key}"
        return f"{INTEGRATIONS}/{key}/{self.configuration_id}"

    @property
    def save_url(self) -> str:
        """Where the form posts."""
        return self.base + ("/new" if self.configuration_id is None else "/edit")

    @property
    def close_url(self) -> str:
        """Back to the Integrations page with this integration expanded."""
        key = self.integration.key
        return f"{INTEGRATIONS}?open={key}#integration-{key}"


def _saved_panel(rt: Runtime, integration: Integration[Any], row: ConfigurationRow) -> Panel:
    representation = configuration_json(rt.services, row)
    fields = integration.form()
    secrets = {key for key, value in representation["config"].items() if is_masked(value)}
    form = ConfigurationForm.saved(fields, representation, row.version)
    return Panel(integration, fields, form, row.id, frozenset(secrets), health=health_of(row))


def _check(panel: Panel, stored: IntegrationConfig | None) -> tuple[dict[str, Any], Panel]:
    """Read the config and check config and policy with the domain, gathering field errors."""
    integration = panel.integration
    config, errors = panel.form.config_body(panel.fields)
    keys = [f["key"] for f in panel.fields]
    general: list[str] = []
    checks = (
        lambda: integration.parse_config(config, stored=stored),
        lambda: parse_statements(panel.form.statements_body()),
    )
    for check in checks:
        try:
            check()
        except InvalidRequest as error:
            by_field, rest = field_errors(error.message, keys)
            errors = {**by_field, **errors}
            general += rest
    return config, replace(panel, errors=errors, form_errors=general)


def _failed(panel: Panel, error: InvalidRequest) -> Panel:
    by_field, general = field_errors(error.message, [f["key"] for f in panel.fields])
    return replace(panel, errors={**panel.errors, **by_field}, form_errors=general)


def _saved_url(key: str, configuration_id: str) -> str:
    return f"{INTEGRATIONS}?open={key}&saved={configuration_id}#configuration-{configuration_id}"


@router.get(INTEGRATIONS + "/{integration_key}/new")
async def new_configuration(
    request: Request, integration_key: str, session: SessionDep, rt: RuntimeDep
) -> Response:
    """The panel for a new configuration: field defaults and the default policy."""
    integration = rt.catalog.get(integration_key)
    fields = integration.form()
    form = ConfigurationForm.new(fields, [s.to_json() for s in integration.default_statements])
    panel = Panel(integration, fields, form)
    return await integrations_page(request, rt, session, expanded=integration.key, panel=panel)


@router.get(INTEGRATIONS + "/{integration_key}/{configuration_id}/edit")
async def edit_configuration(
    request: Request,
    integration_key: str,
    configuration_id: str,
    session: SessionDep,
    rt: RuntimeDep,
) -> Response:
    """The panel for a saved configuration (read-only for reader tokens)."""
    integration = rt.catalog.get(integration_key)
    row = await rt.store.configurations.get(integration_key, configuration_id)
    panel = _saved_panel(rt, integration, row)
    return await integrations_page(request, rt, session, expanded=integration.key, panel=panel)


@router.post(INTEGRATIONS + "/{integration_key}/new")
async def create_configuration(
    request: Request, integration_key: str, session: WriterDep, rt: RuntimeDep
) -> Response:
    """Save a new configuration, or show the form again with its errors."""
    integration = rt.catalog.get(integration_key)
    fields = integration.form()
    form = ConfigurationForm.submitted(fields, await request.form())
    config, panel = _check(Panel(integration, fields, form), stored=None)
    if not panel.errors and not panel.form_errors:
        body = form.create_body(config)
        try:
            row = await configurations.create(rt.services, integration.key, body, now=rt.clock())
        except InvalidRequest as error:
            panel = _failed(panel, error)
        else:
            return see_other(_saved_url(integration.key, row.id))
    return await integrations_page(
        request, rt, session, expanded=integration.key, panel=panel, status=400
    )


@router.post(INTEGRATIONS + "/{integration_key}/{configuration_id}/edit")
async def update_configuration(
    request: Request,
    integration_key: str,
    configuration_id: str,
    session: WriterDep,
    rt: RuntimeDep,
) -> Response:
    """Replace name, on/off, tags, config and policy; masked secrets keep their saved values."""
    integration = rt.catalog.get(integration_key)
    row = await rt.store.configurations.get(integration_key, configuration_id)
    fields = integration.form()
    form = ConfigurationForm.submitted(fields, await request.form())
    panel = replace(_saved_panel(rt, integration, row), form=form)
    config, panel = _check(panel, stored=open_config(rt.services, row))
    status = 400
    if not panel.errors and not panel.form_errors:
        if form.version is not None and form.version != row.version:
            # Say so; saving again (now with the current version) replaces their changes.
            form = replace(form, version=row.version)
            panel, status = replace(panel, form=form, form_errors=[_CHANGED]), 409
        else:
            operations = form.patch_operations(config)
            try:
                await configurations.patch(
                    rt.services, integration.key, row.id, operations, now=rt.clock()
                )
            except InvalidRequest as error:
                panel = _failed(panel, error)
            except Conflict:
                panel, status = replace(panel, form_errors=[_CHANGED]), 409
            else:
                return see_other(_saved_url(integration.key, row.id))
    return await integrations_page(
        request, rt, session, expanded=integration.key, panel=panel, status=status
    )


async def _validate(
    request: Request, rt: Runtime, integration: Integration[Any], stored: IntegrationConfig | None
) -> JSONResponse:
    """Validate with the form's config values; field errors come back as `fieldErrors`."""
    fields = integration.form()
    form = ConfigurationForm.submitted(fields, await request.form())
    raw, problems = form.config_body(fields)
    template = renderer().env.get_template("_validation.html")
    config: IntegrationConfig | None = None
    general: list[str] = []
    try:
        config = integration.parse_config(raw, stored=stored)
    except InvalidRequest as error:
        by_field, general = field_errors(error.message, [f["key"] for f in fields])
        problems = {**by_field, **problems}
    if config is None or problems or general:
        html = template.render(report=None, problems=general)
        body = {"code": "invalid_request", "fieldErrors": problems, "html": html}
        return JSONResponse(body, status_code=400)
    report = await validate(rt.engine, integration, config, rt.clock)
    return JSONResponse({**report.to_json(), "html": template.render(report=report, problems=[])})


@router.post(INTEGRATIONS + "/{integration_key}/validate")
async def validate_unsaved(
    request: Request, integration_key: str, _session: WriterDep, rt: RuntimeDep
) -> JSONResponse:
    """Send the test event with the values in the form of a configuration not yet saved."""
    return await _validate(request, rt, rt.catalog.get(integration_key), stored=None)


@router.post(INTEGRATIONS + "/{integration_key}/{configuration_id}/validate")
async def validate_saved(
    request: Request,
    integration_key: str,
    configuration_id: str,
    _session: WriterDep,
    rt: RuntimeDep,
) -> JSONResponse:
    """Send the test event with the values in the form; masked secrets use the saved ones."""
    integration = rt.catalog.get(integration_key)
    row = await rt.store.configurations.get(integration_key, configuration_id)
    return await _validate(request, rt, integration, stored=open_config(rt.services, row))


@router.post(INTEGRATIONS + "/{integration_key}/{configuration_id}/delete")
async def delete_configuration(
    integration_key: str, configuration_id: str, _session: WriterDep, rt: RuntimeDep
) -> Response:
    """Delete a configuration with its status and error log."""
    integration = rt.catalog.get(integration_key)
    row = await rt.store.configurations.get(integration_key, configuration_id)
    await rt.store.configurations.delete(integration.key, row.id)
    return see_other(
        f"{INTEGRATIONS}?open={integration.key}&deleted={quote(row.name)}"
        f"#integration-{integration.key}"
    )


@router.post(INTEGRATIONS + "/{integration_key}/{configuration_id}/replay")
async def resend_failed(
    integration_key: str, configuration_id: str, _session: WriterDep, rt: RuntimeDep
) -> Response:
    """Resend failed deliveries: queue every delivery of the configuration that ended failed."""
    row = await rt.store.configurations.get(integration_key, configuration_id)
    result = await replay(rt.store, row.id, ReplayWindow(), now=rt.clock())
    if result.queued:
        rt.wake_worker()
    return see_other(
        f"{INTEGRATIONS}/{integration_key}/{row.id}/activity?outcome=failure&resent={result.queued}"
    )

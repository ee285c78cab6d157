"""Dynatrace events: Events API v2, `POST {url}/api/v2/events/ingest`, `Api-Token` auth.

Each event is ingested as a `CUSTOM_CONFIGURATION` event: a feature-flag or settings change is a
change of configuration of the running software, and Davis considers configuration events when
it looks for the root cause of a problem (a deployment event would claim new code shipped; an
info event would not be related to problems at all). The event is attached to the entities
chosen by `type(<entity>)`, narrowed by `tag("<tag>")` when a tag is configured; `properties`
carry who, what, where, the action, the comment and a link, as strings.

Dynatrace answers 201 with `reportCount`, the number of entities the event was attached to. Zero
means the entity selector matched nothing (Dynatrace only selects entities seen in the last 24
hours), so nothing is visible anywhere: that is reported as a permanent failure.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator

from pushgate.errors import PermanentDeliveryError
from pushgate.events import EventContext
from pushgate.integrations.base import (
    JSON_HEADERS,
    Endpoints,
    InboundResponse,
    Integration,
    IntegrationConfig,
    OutboundRequest,
    check_http_url,
    classify_status,
)

EVENT_TYPE = "CUSTOM_CONFIGURATION"
INGEST_PATH = "/api/v2/events/ingest"

# The entity types LaunchDarkly's `entity` field accepts (Dynatrace monitored-entity types).
DynatraceEntity = Literal[
    "APPLICATION",
    "APPLICATION_METHOD",
    "APPLICATION_METHOD_GROUP",
    "AUTO_SCALING_GROUP",
    "AUXILIARY_SYNTHETIC_TEST",
    "AWS_APPLICATION_LOAD_BALANCER",
    "AWS_AVAILABILITY_ZONE",
    "AWS_CREDENTIALS",
    "AWS_LAMBDA_FUNCTION",
    "AWS_NETWORK_LOAD_BALANCER",
    "AZURE_API_MANAGEMENT_SERVICE",
    "AZURE_APPLICATION_GATEWAY",
    "AZURE_COSMOS_DB",
    "AZURE_CREDENTIALS",
    "AZURE_EVENT_HUB",
    "AZURE_EVENT_HUB_NAMESPACE",
    "AZURE_FUNCTION_APP",
    "AZURE_IOT_HUB",
    "AZURE_LOAD_BALANCER",
    "AZURE_MGMT_GROUP",
    "AZURE_REDIS_CACHE",
    "AZURE_REGION",
    "AZURE_SERVICE_BUS_NAMESPACE",
    "AZURE_SERVICE_BUS_QUEUE",
    "AZURE_SERVICE_BUS_TOPIC",
    "AZURE_SQL_DATABASE",
    "AZURE_SQL_ELASTIC_POOL",
    "AZURE_SQL_SERVER",
    "AZURE_STORAGE_ACCOUNT",
    "AZURE_SUBSCRIPTION",
    "AZURE_TENANT",
    "AZURE_VM",
    "AZURE_VM_SCALE_SET",
    "AZURE_WEB_APP",
    "CF_APPLICATION",
    "CF_FOUNDATION",
    "CINDER_VOLUME",
    "CLOUD_APPLICATION",
    "CLOUD_APPLICATION_INSTANCE",
    "CLOUD_APPLICATION_NAMESPACE",
    "CONTAINER_GROUP",
    "CONTAINER_GROUP_INSTANCE",
    "CUSTOM_APPLICATION",
    "CUSTOM_DEVICE",
    "CUSTOM_DEVICE_GROUP",
    "DCRUM_APPLICATION",
    "DCRUM_SERVICE",
    "DCRUM_SERVICE_INSTANCE",
    "DEVICE_APPLICATION_METHOD",
    "DISK",
    "DOCKER_CONTAINER_GROUP_INSTANCE",
    "DYNAMO_DB_TABLE",
    "EBS_VOLUME",
    "EC2_INSTANCE",
    "ELASTIC_LOAD_BALANCER",
    "ENVIRONMENT",
    "EXTERNAL_SYNTHETIC_TEST_STEP",
    "GCP_ZONE",
    "GEOLOCATION",
    "GEOLOC_SITE",
    "GOOGLE_COMPUTE_ENGINE",
    "HOST",
    "HOST_GROUP",
    "HTTP_CHECK",
    "HTTP_CHECK_STEP",
    "HYPERVISOR",
    "KUBERNETES_CLUSTER",
    "KUBERNETES_NODE",
    "MOBILE_APPLICATION",
    "NETWORK_INTERFACE",
    "NEUTRON_SUBNET",
    "OPENSTACK_PROJECT",
    "OPENSTACK_REGION",
    "OPENSTACK_VM",
    "OS",
    "PROCESS_GROUP",
    "PROCESS_GROUP_INSTANCE",
    "RELATIONAL_DATABASE_SERVICE",
    "SERVICE",
    "SERVICE_INSTANCE",
    "SERVICE_METHOD",
    "SERVICE_METHOD_GROUP",
    "SWIFT_CONTAINER",
    "SYNTHETIC_LOCATION",
    "SYNTHETIC_TEST",
    "SYNTHETIC_TEST_STEP",
    "VIRTUALMACHINE",
    "VMWARE_DATACENTER",
]

NO_ENTITY_HINT = (
    "Dynatrace accepted the event but attached it to no entity, so it shows nowhere: check "
    "entity (the entity type) and tag. Dynatrace only selects entities that were active in the "
    "last 24 hours and that carry the tag exactly as written (key or key:value)."
)


class DynatraceConfig(IntegrationConfig):
    """Dynatrace environment URL, access token, and which entities the events attach to."""

    api_token: SecretStr = Field(
        alias="apiToken",
        title="Access token",
        description=(
            "A Dynatrace access token with the events.ingest scope (Ingest events). Create it "
            "under Access tokens in your environment."
        ),
        json_schema_extra={"placeholder": "dt0c01.…"},
    )
    url: str = Field(
        title="Environment URL",
        description=(
            "The address of your Dynatrace environment, without /api. Managed and ActiveGate "
            "environments include /e/{environment-id}."
        ),
        json_schema_extra={
            "placeholder": "https://{your-environment-id}.live.dynatrace.com",
            "format": "uri",
        },
    )
    entity: DynatraceEntity = Field(
        default="APPLICATION",
        title="Entity type",
        description="The type of the monitored entities the events are attached to.",
    )
    tag: str | None = Field(
        default=None,
        title="Tag",
        description=(
            "Optional. Attach events only to entities of that type carrying this tag, written "
            "as in Dynatrace: key, key:value or [context]key:value."
        ),
        json_schema_extra={"placeholder": "service:checkout"},
    )

    _check_url = field_validator("url")(check_http_url)

    @field_validator("tag")
    @classmethod
    def _blank_tag_is_no_tag(cls, value: str | None) -> str | None:
        return (value.strip() or None) if value is not None else None


class Dynatrace(Integration[DynatraceConfig]):
    """Each event becomes a Dynatrace configuration event on the selected entities."""

    key: ClassVar[str] = "dynatrace"
    name: ClassVar[str] = "Dynatrace events"
    description: ClassVar[str] = (
        "Record changes as configuration events on Dynatrace entities, for Davis and charts."
    )
    config_model = DynatraceConfig
    auth_hint: ClassVar[str] = (
        "Dynatrace refused the token: check apiToken (it needs the events.ingest scope) and "
        "that url is the environment the token was created in."
    )

    def build_request(
        self, event: EventContext, config: DynatraceConfig, endpoints: Endpoints
    ) -> OutboundRequest:
        body = {
            "eventType": EVENT_TYPE,
            "title": event.title,
            "startTime": event.date_ms,
            "entitySelector": entity_selector(config.entity, config.tag),
            "properties": _properties(event),
        }
        headers = {
            **JSON_HEADERS,
            "Authorization": f"Api-Token {config.api_token.get_secret_value()}",
        }
        url = config.url.rstrip("/") + INGEST_PATH
        return OutboundRequest("POST", url, headers, json.dumps(body).encode())

    def classify(self, response: InboundResponse) -> None:
        """The common reading, plus: a 2xx with `reportCount: 0` reached no entity."""
        classify_status(response, auth_hint=self.auth_hint)
        answer = response.json()
        if isinstance(answer, dict) and answer.get("reportCount") == 0:
            raise PermanentDeliveryError(
                "Dynatrace attached the event to no entity (reportCount 0)",
                status_code=response.status,
                response_body=response.text(),
                hint=NO_ENTITY_HINT,
            )


def entity_selector(entity: str, tag: str | None) -> str:
    """`type(APPLICATION)`, plus `,tag("…")` with `~` and `"` escaped by `~` as Dynatrace asks."""
    selector = f"type({entity})"
    if tag:
        escaped = tag.replace("~", "~~").replace('"', '~"')
        selector += f',tag("{escaped}")'
    return selector


def _properties(event: EventContext) -> dict[str, str]:
    """What a person looking at the event in Dynatrace wants to read, as a string map."""
    properties: dict[str, Any] = {
        "Summary": event.title,
        "Kind": event.kind,
        f"{event.kind.capitalize()} name": event.name,
        f"{event.kind.capitalize()} key": event.key,
        "Action": ", ".join(event.actions) or None,
        "Changed by": event.member.display_name if event.member else None,
        "Changed by email": event.member.email if event.member else None,
        "Comment": event.comment,
        "Details": event.details or None,
        "Link": event.url,
        "Source": "pushgate",
        "Event id": event.id,
    }
    # For a project or environment event the entry's own name wins over the resource's.
    if event.project:
        properties.setdefault("Project name", event.project.name)
        properties.setdefault("Project key", event.project.key)
        if event.project.environment:
            properties.setdefault("Environment name", event.project.environment.name)
            properties.setdefault("Environment key", event.project.environment.key)
    return {key: str(value) for key, value in properties.items() if value}

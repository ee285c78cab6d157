"""The catalog: every integration this install knows, by its LaunchDarkly `integrationKey`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pushgate.errors import NotFound
from pushgate.integrations.base import Integration


class Catalog:
    """Integrations by key, listed in the order people read them (by name)."""

    def __init__(self, integrations: Iterable[Integration[Any]]) -> None:
        self._by_key = {i.key: i for i in sorted(integrations, key=lambda i: i.name.lower())}

    def get(self, key: str) -> Integration[Any]:
        """The integration with this key; NotFound when the catalog has none."""
        try:
            return self._by_key[key]
        except KeyError:
            raise NotFound(f"unknown integration key {key!r}") from None

    def __iter__(self) -> Iterator[Integration[Any]]:
        return iter(self._by_key.values())

    def __contains__(self, key: object) -> bool:
        return key in self._by_key


def default_catalog(manifest_dirs: Sequence[Path] = ()) -> Catalog:
    """Every built-in integration, and the manifest integrations found in `manifest_dirs`."""
    from pushgate.integrations import (
        appdynamics,
        datadog,
        dynatrace,
        elastic,
        honeycomb,
        manifest_loader,
        msteams,
        newrelic,
        signalfx,
        splunk,
        webhook,
    )

    builtins: list[Integration[Any]] = [
        datadog.Datadog(),
        dynatrace.Dynatrace(),
        elastic.Elastic(),
        honeycomb.Honeycomb(),
        msteams.Teams(),
        newrelic.NewRelic(),
        signalfx.SignalFx(),
        splunk.Splunk(),
        appdynamics.AppDynamics(),
        webhook.Webhook(),
    ]
    manifests = manifest_loader.load_manifests(manifest_dirs, {i.key: i for i in builtins})
    return Catalog([*builtins, *manifests])

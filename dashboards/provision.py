"""Push the data source, dashboards and alerting to a running Grafana over its HTTP API.

For a Grafana that cannot read the provisioning folder (a hosted one, or one run by another
team): `svc-dashboards provision --grafana URL --token TOKEN` sends the same definitions
with grafana-client. Every step is an upsert by uid (or name), so running it again changes
what changed and duplicates nothing. Contact points get only the receivers whose address is
set in this process's environment (the variables of contact-points.yaml).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError

from dashboards import alerting
from dashboards.boards import ALL
from dashboards.model import DATASOURCE_UID

MESSAGE = "svc-dashboards provision"


@dataclass(frozen=True)
class InfluxSource:
    """The InfluxDB that Grafana queries, as Grafana reaches it."""

    url: str
    database: str
    token: str | None = None

    def json(self) -> dict[str, Any]:
        source: dict[str, Any] = {
            "uid": DATASOURCE_UID,
            "name": "service_quality",
            "type": "influxdb",
            "access": "proxy",
            "url": self.url,
            "jsonData": {"dbName": self.database, "httpMode": "GET"},
        }
        if self.token:
            source["jsonData"]["httpHeaderName1"] = "Authorization"
            source["secureJsonData"] = {"httpHeaderValue1": f"Token {self.token}"}
        return source


@dataclass
class Pushed:
    """What one run created and updated, by kind."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)


def push(grafana: GrafanaApi, source: InfluxSource, env: Mapping[str, str] = os.environ) -> Pushed:
    done = Pushed()
    _upsert(
        done,
        "folder " + alerting.FOLDER_UID,
        lambda: grafana.folder.get_folder(alerting.FOLDER_UID),
        lambda: grafana.folder.create_folder(alerting.FOLDER, uid=alerting.FOLDER_UID),
        lambda: grafana.folder.update_folder(
            alerting.FOLDER_UID, title=alerting.FOLDER, overwrite=True
        ),
    )
    _upsert(
        done,
        "datasource " + DATASOURCE_UID,
        lambda: grafana.datasource.get_datasource_by_uid(DATASOURCE_UID),
        lambda: grafana.datasource.create_datasource(source.json()),
        lambda: grafana.datasource.update_datasource_by_uid(DATASOURCE_UID, source.json()),
    )
    for board in ALL:  # overwrite: the code is the truth, whatever version Grafana holds
        grafana.dashboard.update_dashboard(
            {
                "dashboard": board.json(),
                "folderUid": alerting.FOLDER_UID,
                "overwrite": True,
                "message": MESSAGE,
            }
        )
        done.updated.append("dashboard " + board.uid)
    provisioning = grafana.alertingprovisioning
    rules = []
    for rule in alerting.RULES:
        body = {
            **rule.json(),
            "folderUID": alerting.FOLDER_UID,
            "ruleGroup": alerting.GROUP,
            "orgID": 1,
        }
        rules.append(body)
        _upsert(
            done,
            "alert-rule " + rule.uid,
            partial(provisioning.get_alertrule, rule.uid),
            partial(provisioning.create_alertrule, body),
            partial(provisioning.update_alertrule, rule.uid, body),
        )
    provisioning.update_rule_group(
        alerting.FOLDER_UID,
        alerting.GROUP,
        {"title": alerting.GROUP, "folderUid": alerting.FOLDER_UID, "interval": 60, "rules": rules},
    )
    if not any(env.get(variable) for _, variable, _ in alerting.RECEIVERS):
        return done  # no address to notify: Grafana would refuse a policy without a receiver
    existing = {point["uid"] for point in provisioning.get_contactpoints()}
    for kind, variable, settings in alerting.RECEIVERS:
        if not env.get(variable):
            continue
        filled = {k: v.replace("${" + variable + "}", env[variable]) if isinstance(v, str) else v
                  for k, v in settings.items()}  # fmt: skip
        point = {"name": alerting.CONTACT_POINT, **alerting.receiver(kind, filled)}
        if point["uid"] in existing:
            provisioning.update_contactpoint(point["uid"], point)
            done.updated.append("contact-point " + point["uid"])
        else:
            provisioning.create_contactpoint(point)
            done.created.append("contact-point " + point["uid"])
    timing = alerting.mute_timing()
    _upsert(
        done,
        "mute-timing " + timing["name"],
        lambda: provisioning.get_mute_timing(timing["name"]),
        lambda: provisioning.create_mute_timing(timing),
        lambda: provisioning.update_mute_timing(timing["name"], timing),
    )
    provisioning.set_notification_policy_tree(alerting.policy())
    done.updated.append("policies")
    return done


def _upsert(
    done: Pushed,
    what: str,
    get: Callable[[], object],
    create: Callable[[], object],
    update: Callable[[], object],
) -> None:
    try:
        get()
    except GrafanaClientError as e:
        if e.status_code != 404:
            raise
        create()
        done.created.append(what)
    else:
        update()
        done.updated.append(what)

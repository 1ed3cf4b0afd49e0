"""`svc-dashboards provision` against Grafana's documented HTTP API.

Grafana cannot be installed here, so a small server on loopback answers as Grafana's HTTP API
reference says it does, for the endpoints the push uses (folders, data sources, dashboards,
the alerting provisioning API), refusing what that reference says Grafana refuses: no or a
wrong token (401), a missing required field (400), a dashboard whose uid exists without
`overwrite` (412), a second folder, data source or rule with a uid already held (409), a
notification policy naming a contact point or mute timing that does not exist (400).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from dashboards import alerting
from dashboards.boards import ALL
from dashboards.cli import main as dashboards_main
from dashboards.model import DATASOURCE_UID

TOKEN = "glsa_test_token"
RULE_FIELDS = (
    "title", "condition", "data", "folderUID", "ruleGroup", "noDataState", "execErrState", "for",
)  # fmt: skip


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class FakeGrafana:
    """The state a Grafana would hold, changed only as its API reference describes."""

    def __init__(self) -> None:
        self.folders: dict[str, dict[str, Any]] = {}
        self.datasources: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.rules: dict[str, dict[str, Any]] = {}
        self.groups: dict[tuple[str, str], dict[str, Any]] = {}
        self.contact_points: dict[str, dict[str, Any]] = {}
        self.mute_timings: dict[str, dict[str, Any]] = {}
        self.policy: dict[str, Any] | None = None
        self.calls: list[tuple[str, str]] = []

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        self.calls.append((method, path))
        for pattern, handler in self.routes():
            match = re.fullmatch(pattern, f"{method} {path}")
            if match:
                return handler(body, *match.groups())
        return 404, {"message": "Not found"}

    def routes(self) -> list[tuple[str, Any]]:
        return [
            (r"GET /api/folders/([^/]+)", lambda b, uid: self._get(self.folders, uid)),
            (r"POST /api/folders", self._create_folder),
            (r"PUT /api/folders/([^/]+)", self._update_folder),
            (r"GET /api/datasources/uid/([^/]+)", lambda b, uid: self._get(self.datasources, uid)),
            (r"POST /api/datasources", self._create_datasource),
            (r"PUT /api/datasources/uid/([^/]+)", self._update_datasource),
            (r"POST /api/dashboards/db", self._save_dashboard),
            (
                r"GET /api/v1/provisioning/alert-rules/([^/]+)",
                lambda b, u: self._get(self.rules, u),
            ),
            (r"POST /api/v1/provisioning/alert-rules", self._create_rule),
            (r"PUT /api/v1/provisioning/alert-rules/([^/]+)", self._update_rule),
            (r"PUT /api/v1/provisioning/folder/([^/]+)/rule-groups/([^/]+)", self._group),
            (r"GET /api/v1/provisioning/contact-points", self._contact_points),
            (r"POST /api/v1/provisioning/contact-points", self._create_contact_point),
            (r"PUT /api/v1/provisioning/contact-points/([^/]+)", self._update_contact_point),
            (r"GET /api/v1/provisioning/mute-timings/([^/]+)", self._get_mute_timing),
            (r"POST /api/v1/provisioning/mute-timings", self._create_mute_timing),
            (r"PUT /api/v1/provisioning/mute-timings/([^/]+)", self._update_mute_timing),
            (r"PUT /api/v1/provisioning/policies", self._set_policy),
        ]

    @staticmethod
    def _get(store: dict[str, Any], key: str) -> tuple[int, Any]:
        if key not in store:
            return 404, {"message": "not found"}
        return 200, store[key]

    @staticmethod
    def _need(body: dict[str, Any], *names: str) -> None:
        missing = [n for n in names if body.get(n) in (None, "")]
        if missing:
            raise Refused(400, f"missing {', '.join(missing)}")

    def _create_folder(self, body: dict[str, Any]) -> tuple[int, Any]:
        self._need(body, "title")
        if body.get("uid") in self.folders:
            raise Refused(409, "a folder with the same uid already exists")
        self.folders[body["uid"]] = body
        return 200, body

    def _update_folder(self, body: dict[str, Any], uid: str) -> tuple[int, Any]:
        self._need(body, "title")
        if uid not in self.folders:
            raise Refused(404, "folder not found")
        if "version" not in body and not body.get("overwrite"):
            raise Refused(412, "version or overwrite needed")
        self.folders[uid].update(title=body["title"])
        return 200, self.folders[uid]

    def _create_datasource(self, body: dict[str, Any]) -> tuple[int, Any]:
        self._need(body, "name", "type", "access")
        if body.get("uid") in self.datasources or any(
            d["name"] == body["name"] for d in self.datasources.values()
        ):
            raise Refused(409, "data source with the same name or uid already exists")
        self.datasources[body["uid"]] = body
        return 200, {"datasource": body, "message": "Datasource added"}

    def _update_datasource(self, body: dict[str, Any], uid: str) -> tuple[int, Any]:
        self._need(body, "name", "type", "access")
        if uid not in self.datasources:
            raise Refused(404, "data source not found")
        self.datasources[uid] = body
        return 200, {"datasource": body, "message": "Datasource updated"}

    def _save_dashboard(self, body: dict[str, Any]) -> tuple[int, Any]:
        board = body.get("dashboard") or {}
        self._need(board, "title", "uid")
        if "id" in board and board["id"] is not None:
            raise Refused(400, "a new dashboard has no id")
        if body.get("folderUid") and body["folderUid"] not in self.folders:
            raise Refused(400, "folder not found")
        if board["uid"] in self.dashboards and not body.get("overwrite"):
            raise Refused(412, "version-mismatch")
        self.dashboards[board["uid"]] = body
        return 200, {"uid": board["uid"], "status": "success", "version": 1}

    def _create_rule(self, body: dict[str, Any]) -> tuple[int, Any]:
        self._need(body, *RULE_FIELDS)
        if body["folderUID"] not in self.folders:
            raise Refused(400, "folder does not exist")
        if body.get("uid") in self.rules:
            raise Refused(409, "a rule with this uid already exists")
        self.rules[body["uid"]] = body
        return 201, body

    def _update_rule(self, body: dict[str, Any], uid: str) -> tuple[int, Any]:
        self._need(body, *RULE_FIELDS)
        if uid not in self.rules:
            raise Refused(404, "rule not found")
        self.rules[uid] = body
        return 200, body

    def _group(self, body: dict[str, Any], folder: str, group: str) -> tuple[int, Any]:
        self._need(body, "title", "interval")
        if any(rule.get("uid") not in self.rules for rule in body.get("rules", [])):
            raise Refused(400, "rule group names a rule that does not exist")
        self.groups[(folder, group)] = body
        return 200, body

    def _contact_points(self, body: Any) -> tuple[int, Any]:
        return 200, list(self.contact_points.values())

    def _create_contact_point(self, body: dict[str, Any]) -> tuple[int, Any]:
        self._need(body, "name", "type", "settings")
        if body.get("uid") in self.contact_points:
            raise Refused(400, "contact point with this uid exists")
        self.contact_points[body["uid"]] = body
        return 202, body

    def _update_contact_point(self, body: dict[str, Any], uid: str) -> tuple[int, Any]:
        self._need(body, "name", "type", "settings")
        if uid not in self.contact_points:
            raise Refused(404, "contact point not found")
        self.contact_points[uid] = body
        return 202, body

    def _get_mute_timing(self, body: Any, name: str) -> tuple[int, Any]:
        return self._get(self.mute_timings, name)

    def _create_mute_timing(self, body: dict[str, Any]) -> tuple[int, Any]:
        self._need(body, "name", "time_intervals")
        if body["name"] in self.mute_timings:
            raise Refused(409, "mute timing exists")
        self.mute_timings[body["name"]] = body
        return 201, body

    def _update_mute_timing(self, body: dict[str, Any], name: str) -> tuple[int, Any]:
        self._need(body, "name", "time_intervals")
        self.mute_timings[name] = body
        return 200, body

    def _set_policy(self, body: dict[str, Any]) -> tuple[int, Any]:
        self._need(body, "receiver")
        names = {p["name"] for p in self.contact_points.values()}
        routes = [body, *body.get("routes", [])]
        if any(r.get("receiver", body["receiver"]) not in names for r in routes):
            raise Refused(400, "the policy names a contact point that does not exist")
        for route in routes:
            if any(m not in self.mute_timings for m in route.get("mute_time_intervals", [])):
                raise Refused(400, "the policy names a mute timing that does not exist")
        self.policy = body
        return 202, {"message": "policies updated"}


@pytest.fixture
def grafana() -> Iterator[tuple[str, FakeGrafana]]:
    state = FakeGrafana()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                status, answer = 401, {"message": "Unauthorized"}
            else:
                try:
                    status, answer = state.answer(self.command, url.path, body)
                except Refused as e:
                    status, answer = e.status, {"message": str(e)}
            if url.query and "name" in parse_qs(url.query) and isinstance(answer, list):
                answer = [a for a in answer if a["name"] == parse_qs(url.query)["name"][0]]
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", state
    server.shutdown()


def snapshot(state: FakeGrafana) -> str:
    held = {k: v for k, v in vars(state).items() if k != "calls"}
    held["groups"] = {"/".join(k): v for k, v in state.groups.items()}
    return json.dumps(held, sort_keys=True)


def test_provision_pushes_everything_and_a_second_run_duplicates_nothing(
    grafana, monkeypatch, capsys
):
    url, state = grafana
    monkeypatch.setenv("SVC_WECOM_WEBHOOK_URL", "https://qyapi.example/webhook?key=k")
    monkeypatch.setenv("SVC_ALERT_EMAILS", "duty@hall.example")
    monkeypatch.delenv("SVC_DINGTALK_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("SVC_ALERT_WEBHOOK_URL", raising=False)
    args = ["provision", "--grafana", url, "--token", TOKEN, "--influx", "http://influx:8086"]
    assert dashboards_main(args) == 0
    first = capsys.readouterr().out
    assert "created folder svc-rating" in first and "created datasource" in first
    assert set(state.dashboards) == {b.uid for b in ALL}
    assert all(d["folderUid"] == alerting.FOLDER_UID for d in state.dashboards.values())
    assert set(state.rules) == {r.uid for r in alerting.RULES}
    assert state.datasources[DATASOURCE_UID]["jsonData"]["dbName"] == "service_quality"
    assert state.datasources[DATASOURCE_UID]["url"] == "http://influx:8086"
    kinds = {p["type"]: p for p in state.contact_points.values()}
    assert set(kinds) == {"wecom", "email"}  # only the receivers whose address is set
    assert kinds["wecom"]["settings"]["url"] == "https://qyapi.example/webhook?key=k"
    assert state.policy == alerting.policy()
    assert state.groups[(alerting.FOLDER_UID, alerting.GROUP)]["interval"] == 60

    before = snapshot(state)
    assert dashboards_main(args) == 0
    second = capsys.readouterr().out
    assert "created" not in second  # everything found by its uid and updated in place
    assert snapshot(state) == before


def test_provision_without_receivers_leaves_the_policy_and_a_bad_token_is_refused(
    grafana, monkeypatch, capsys
):
    url, state = grafana
    for _, variable, _ in alerting.RECEIVERS:
        monkeypatch.delenv(variable, raising=False)
    assert dashboards_main(["provision", "--grafana", url, "--token", TOKEN]) == 0
    assert state.policy is None and not state.contact_points
    assert "contact points and policy untouched" in capsys.readouterr().out
    assert dashboards_main(["provision", "--grafana", url, "--token", "wrong"]) == 1
    assert "Grafana" in capsys.readouterr().err

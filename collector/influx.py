"""Writes line protocol over the HTTP /write API that every InfluxDB generation serves."""

from __future__ import annotations

import json
from typing import Any

import requests

# InfluxDB refusing the data itself (a line it cannot parse, a field of another type, a point
# outside the retention) answers one of these with a JSON error of its own: the same write can never
# succeed. Any other answer (404 for a database dropped or misnamed, 408 or 504 from a proxy,
# 401, 429, 5xx, a proxy's own 400) is an outage, however long: the data waits, never set aside.
REFUSALS = frozenset({400, 422})
# a refusal that names one of these is a limit of the server's to raise, not bad data: an outage
LIMITS = ("max-series-per-database", "max-values-per-tag")


class InfluxError(RuntimeError):
    """InfluxDB did not take the write or query.

    status: the HTTP status, None when InfluxDB could not be reached or its answer read.
    permanent: InfluxDB refused the data (or the query) itself, so sending it again cannot
    help; otherwise a retry may. missing_database: the database is not there (dropped, or
    never made on this server), so it must be made before the next write.
    """

    def __init__(self, message: str, status: int | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.permanent = permanent
        self.missing_database = "database not found" in message


def refusal(status: int, text: str) -> bool:
    """Whether an answer is InfluxDB's own refusal of the data (REFUSALS, with its JSON error,
    and no server limit named)."""
    if status not in REFUSALS or any(limit in text for limit in LIMITS):
        return False
    try:
        error = json.loads(text)
    except ValueError:
        return False
    # 1.x answers {"error": ...}, 2.x {"code": ..., "message": ...}
    return isinstance(error, dict) and isinstance(error.get("error", error.get("message")), str)


class InfluxHttp:
    """InfluxDB's HTTP API, as every generation serves it: /write, /query and /ping."""

    def __init__(self, url: str, database: str, token: str | None = None) -> None:
        self.url = url
        self.database = database
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Token {token}"

    def ensure_database(self) -> None:
        """Create the database on a 1.x server; 2.x/3.x map it to an existing bucket."""
        self._post("/query", params={"q": f'CREATE DATABASE "{self.database}"'})

    def execute(self, statement: str) -> None:
        """Run an InfluxQL statement that changes data (DELETE, DROP) in the database."""
        self._post("/query", params={"db": self.database, "q": statement})

    def write(self, lines: list[str]) -> None:
        """Write the lines in one request; raises InfluxError unless all were accepted."""
        if lines:
            body = "\n".join(lines).encode()
            self._post("/write", params={"db": self.database, "precision": "ns"}, data=body)

    def query(self, q: str) -> list[dict[str, Any]]:
        """Rows of an InfluxQL query, times in ns; raises InfluxError as writes do. The query
        goes in a form body, not the URL: a batch's look-up of copies names thousands of
        terminals, and a URL of that length is refused (431)."""
        try:
            resp = self.session.post(
                f"{self.url}/query",
                params={"db": self.database, "epoch": "ns"},
                data={"q": q},
                timeout=10,
            )
        except requests.RequestException as e:
            raise InfluxError(f"/query: {e}") from e
        if resp.status_code >= 300:
            raise _failed("/query", resp)
        try:
            return rows_of(resp.json())
        except QueryRefused as e:  # InfluxDB answered, and refused the statement itself
            missing = "database not found" in str(e)
            raise InfluxError(f"/query: {e}", resp.status_code, permanent=not missing) from e
        except Exception as e:  # an answer of any other shape: a server or proxy gone odd
            raise InfluxError(f"/query: unreadable answer: {e!r}"[:400]) from e

    def ping(self) -> bool:
        try:
            return self.session.get(f"{self.url}/ping", timeout=2).status_code == 204
        except requests.RequestException:
            return False

    def _post(self, path: str, params: dict[str, str], data: bytes | None = None) -> None:
        try:
            resp = self.session.post(f"{self.url}{path}", params=params, data=data, timeout=10)
        except requests.RequestException as e:
            raise InfluxError(f"{path}: {e}") from e
        if resp.status_code >= 300:
            raise _failed(path, resp)


def _failed(path: str, resp: requests.Response) -> InfluxError:
    text = resp.text.strip()
    return InfluxError(
        f"{path}: HTTP {resp.status_code} {text[:300]}",
        resp.status_code,
        permanent=refusal(resp.status_code, text),
    )


class QueryRefused(RuntimeError):
    """An InfluxQL answer holds an error, or only part of what was asked (`partial`)."""


def rows_of(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten an InfluxQL JSON answer into one dict per row (tags merged in); raises
    QueryRefused for an error in it, or a part of a result (InfluxDB's max-row-limit)."""
    rows: list[dict[str, Any]] = []
    results = answer.get("results", [])
    if not isinstance(results, list):
        raise TypeError(f"results is {type(results).__name__}, not a list")
    for result in results:
        if "error" in result:
            raise QueryRefused(result["error"])
        if result.get("partial"):
            raise QueryRefused("a partial answer: more rows than InfluxDB's max-row-limit")
        for series in result.get("series", []):
            tags = series.get("tags", {})
            for values in series["values"]:
                row = dict(zip(series["columns"], values, strict=True))
                row.update(tags)
                rows.append(row)
    return rows

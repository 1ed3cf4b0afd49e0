"""Writes line protocol over the HTTP /write API that every InfluxDB generation serves."""

from __future__ import annotations

from typing import Any

import requests

# What InfluxDB answers when it refuses the data itself (a line it cannot parse, a field of
# another type, a point outside the retention): the same write can never succeed. Any other
# answer (404 for a database dropped or misnamed, 408 or 504 from a proxy, 401, 429, 5xx) is an
# outage, however long: the data waits for InfluxDB, it is never set aside.
REFUSALS = frozenset({400, 422})


class InfluxError(RuntimeError):
    """InfluxDB did not take the write or query.

    status: the HTTP status, None when InfluxDB could not be reached or its answer read.
    permanent: InfluxDB refused the data itself (REFUSALS), so sending it again cannot help;
    otherwise a retry may. missing_database: the database is not there (dropped, or never
    made on this server), so it must be made before the next write.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.permanent = status in REFUSALS
        self.missing_database = "database not found" in message


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
            raise InfluxError(
                f"/query: HTTP {resp.status_code} {resp.text.strip()[:300]}", resp.status_code
            )
        try:
            return rows_of(resp.json())
        except (RuntimeError, ValueError) as e:  # an error in the answer, or no JSON at all
            raise InfluxError(f"/query: {e}") from e

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
            raise InfluxError(
                f"{path}: HTTP {resp.status_code} {resp.text.strip()[:300]}", resp.status_code
            )


def rows_of(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten an InfluxQL JSON answer into one dict per row (tags merged in)."""
    rows: list[dict[str, Any]] = []
    results = answer.get("results", [])
    assert isinstance(results, list)
    for result in results:
        if "error" in result:
            raise RuntimeError(result["error"])
        for series in result.get("series", []):
            tags = series.get("tags", {})
            for values in series["values"]:
                row = dict(zip(series["columns"], values, strict=True))
                row.update(tags)
                rows.append(row)
    return rows

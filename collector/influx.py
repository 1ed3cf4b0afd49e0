"""Writes line protocol over the HTTP /write API that every InfluxDB generation serves."""

from __future__ import annotations

from typing import Any

import requests


class InfluxError(RuntimeError):
    """InfluxDB did not take the write or query.

    permanent: the server refused the data itself (HTTP 4xx), so sending the same
    again cannot help; otherwise it was unreachable or failing and a retry may.
    """

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


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
        """Rows of an InfluxQL query, times in ns; raises InfluxError as writes do."""
        try:
            resp = self.session.get(
                f"{self.url}/query",
                params={"db": self.database, "q": q, "epoch": "ns"},
                timeout=10,
            )
        except requests.RequestException as e:
            raise InfluxError(f"/query: {e}") from e
        if resp.status_code >= 300:
            raise InfluxError(f"/query: HTTP {resp.status_code} {resp.text.strip()[:300]}")
        try:
            return rows_of(resp.json())
        except RuntimeError as e:
            raise InfluxError(f"/query: {e}", permanent=True) from e

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
                f"{path}: HTTP {resp.status_code} {resp.text.strip()[:300]}",
                permanent=400 <= resp.status_code < 500 and resp.status_code not in (401, 403, 429),
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

"""The provisioning files Grafana loads at start, written from the code (`svc-dashboards generate`).

They are committed, so a hall can point Grafana at dashboards/provisioning/ without running
anything; a test holds them equal to what the code writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from dashboards import alerting
from dashboards.alerting import FOLDER, FOLDER_UID
from dashboards.boards import ALL

PROVISIONING = Path(__file__).resolve().parent / "provisioning"

PROVIDER = {
    "apiVersion": 1,
    "providers": [
        {
            "name": "svc-rating",
            "folder": FOLDER,
            "folderUid": FOLDER_UID,
            "type": "file",
            "disableDeletion": True,
            "allowUiUpdates": False,
            "updateIntervalSeconds": 60,
            # Grafana expands ${...} from its environment: the folder holding the JSON files
            "options": {"path": "${SVC_DASHBOARDS_PATH}", "foldersFromFilesStructure": False},
        }
    ],
}
HEADER = "# Written by `svc-dashboards generate` from dashboards/*.py: change the code, not this.\n"


def contents() -> dict[str, str]:
    """Each generated file's text, by its path under the provisioning folder."""
    found = {f"dashboards/svc-rating/{board.uid}.json": _json(board.json()) for board in ALL}
    found["dashboards/svc-rating.yaml"] = HEADER + _yaml(PROVIDER)
    found["alerting/rules.yaml"] = HEADER + _yaml(alerting.rules_file())
    found["alerting/contact-points.yaml"] = HEADER + _yaml(alerting.contact_points_file())
    found["alerting/policies.yaml"] = HEADER + _yaml(alerting.policies_file())
    return found


def write(folder: Path = PROVISIONING) -> list[Path]:
    written = []
    for name, text in contents().items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def _yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100)

"""The three dashboards, each written with dashboards.model; ALL lists them."""

from dashboards.boards import clerk_appraisal, hall_live, terminal_health
from dashboards.model import Dashboard

ALL: tuple[Dashboard, ...] = (
    hall_live.DASHBOARD,
    clerk_appraisal.DASHBOARD,
    terminal_health.DASHBOARD,
)

"""营业厅实时 Hall live: today's ratings by hall, counter and clerk, refreshing itself.

Every figure leaves suspect ratings out (suspect = 0) but the suspect count itself; shares
are one mean() over the rating's 0/1 fields (docs/contract.md).
"""

from dashboards.appraisal import ASPECT_NAMES
from dashboards.model import Dashboard, Panel, Query, Variable

PICKED = '"site" =~ /^$site$/ AND "counter" =~ /^$counter$/ AND "staff" =~ /^$staff$/'
HONEST = f'$timeFilter AND {PICKED} AND "suspect" = 0'
SHARE_COLOURS = ((None, "red"), (80.0, "orange"), (90.0, "green"))
FIGURES = (
    'count("score") AS "评价数", mean("satisfied") * 100 AS "满意率", '
    'mean("good") * 100 AS "好评率", mean("poor") * 100 AS "差评率", mean("score") AS "平均分", '
    'count("rated") - count("score") AS "未评"'  # honest windows less the rated: skipped
)
# the aspect mode's mean scores (docs/contract.md); no row where no terminal used the mode
ASPECT_FIGURES = ", ".join(f'mean("{aspect}") AS "{name}"' for aspect, name in ASPECT_NAMES.items())


def _stat(
    title: str,
    description: str,
    influxql: str,
    *,
    percent: bool = False,
    decimals: int | None = None,
    thresholds: tuple[tuple[float | None, str], ...] = ((None, "blue"),),
) -> Panel:
    return Panel(
        "stat",
        title,
        description,
        (Query(influxql),),
        width=4,
        height=4,
        unit="percent" if percent else "none",
        decimals=1 if percent else decimals,
        thresholds=thresholds,
    )


def _breakdown(title: str, description: str, tag: str) -> Panel:
    """The day's figures, participation, skipped and suspect counts, and the aspect mode's
    attitude and efficiency where it was used, per value of one tag."""
    group = f'GROUP BY "site", "{tag}"'
    return Panel(
        "table",
        title,
        description,
        (
            Query(f"SELECT {FIGURES} FROM rating WHERE {HONEST} {group}"),
            Query(
                'SELECT mean("rated") * 100 AS "参评率" FROM rating '
                f"WHERE {HONEST} AND \"mode\" = 'prompt' {group}"
            ),
            Query(
                'SELECT count("score") AS "可疑" FROM rating '
                f'WHERE $timeFilter AND {PICKED} AND "suspect" = 1 {group}'
            ),
            Query(f"SELECT {ASPECT_FIGURES} FROM rating WHERE {HONEST} {group}"),
        ),
        width=12,
        height=9,
        decimals=1,
        transformations=({"id": "merge", "options": {}},),
    )


DASHBOARD = Dashboard(
    uid="svc-hall-live",
    title="营业厅实时 Hall live",
    description=(
        "今日各营业厅、窗口、营业员的评价、满意率、参评率与差评，每30秒刷新。"
        " Today's ratings, satisfaction, participation and poor ratings by hall, counter and"
        " clerk; refreshes every 30 s."
    ),
    refresh="30s",
    variables=(
        Variable(
            "site",
            "营业厅 Hall",
            'SHOW TAG VALUES FROM "rating" WITH KEY = "site"',
            include_all=False,  # a manager's own hall; several may be picked
        ),
        Variable(
            "counter",
            "窗口 Counter",
            'SHOW TAG VALUES FROM "rating" WITH KEY = "counter" WHERE "site" =~ /^$site$/',
        ),
        Variable(
            "staff",
            "营业员 Clerk",
            'SHOW TAG VALUES FROM "rating" WITH KEY = "staff" WHERE "site" =~ /^$site$/',
        ),
    ),
    rows=(
        (
            _stat(
                "评价数 Ratings",
                "有评分且非可疑的评价数。 Ratings with a score, suspect ones left out.",
                f'SELECT count("score") FROM rating WHERE {HONEST}',
            ),
            _stat(
                "满意率 Satisfaction",
                "评分≥4的占比。 Share of ratings scoring 4 or 5.",
                f'SELECT mean("satisfied") * 100 FROM rating WHERE {HONEST}',
                thresholds=SHARE_COLOURS,
                percent=True,
            ),
            _stat(
                "好评率 Good",
                "评分≥3的占比。 Share of ratings scoring 3 or more.",
                f'SELECT mean("good") * 100 FROM rating WHERE {HONEST}',
                thresholds=SHARE_COLOURS,
                percent=True,
            ),
            _stat(
                "差评率 Poor",
                "评分≤2的占比。 Share of ratings scoring 1 or 2.",
                f'SELECT mean("poor") * 100 FROM rating WHERE {HONEST}',
                thresholds=((None, "green"), (5.0, "orange"), (10.0, "red")),
                percent=True,
            ),
            _stat(
                "平均分 Average",
                "平均评分（1–5）。 Average score, 1 to 5.",
                f'SELECT mean("score") FROM rating WHERE {HONEST}',
                decimals=2,
            ),
            _stat(
                "参评率 Participation",
                "评价提示模式下，已评价的窗口占所有提示窗口的比例。"
                " Prompt mode: rated windows out of all windows opened.",
                f'SELECT mean("rated") * 100 FROM rating WHERE {HONEST} AND "mode" = \'prompt\'',
                percent=True,
            ),
        ),
        (
            _stat(
                "未评 Skipped",
                "提示后超时未评价的窗口数。 Windows that closed unrated.",
                f'SELECT count("rated") FROM rating WHERE {HONEST} AND "rated" = 0',
            ),
            _stat(
                "可疑 Suspect",
                "被规则标记为可疑的评价（保留，不计入各项指标）。"
                " Ratings flagged suspect: kept, never counted in the figures.",
                'SELECT count("score") FROM rating '
                f'WHERE $timeFilter AND {PICKED} AND "suspect" = 1',
                thresholds=((None, "green"), (1.0, "orange")),
            ),
            _stat(
                "误按 Stray",
                "无评价窗口时的按键（终端计数，按营业厅）。"
                " Presses with no window open, from the terminals' counters (by hall only).",
                'SELECT sum("stray") FROM (SELECT spread("stray") AS "stray" FROM device '
                'WHERE $timeFilter AND "site" =~ /^$site$/ GROUP BY "device")',
            ),
            Panel(
                "timeseries",
                "每小时评价 Ratings per hour",
                "每小时的评价数与差评数。 Ratings and poor ratings in each hour.",
                (
                    Query(
                        'SELECT count("score") AS "评价数", sum("poor") AS "差评" FROM rating '
                        f"WHERE {HONEST} GROUP BY time(1h) fill(0) tz('Asia/Shanghai')",
                        table=False,
                    ),
                ),
                width=12,
                height=4,
                options={"legend": {"displayMode": "list", "placement": "bottom"}},
            ),
        ),
        (
            _breakdown(
                "按窗口 By counter",
                "各窗口今日指标（使用分项评价时含服务态度、工作效率平均分）。"
                " Today's figures per counter, with mean attitude and efficiency where"
                " terminals rate them apart.",
                "counter",
            ),
            _breakdown(
                "按营业员 By clerk",
                "各营业员今日指标（使用分项评价时含服务态度、工作效率平均分）；空工号为无人登录时的评价。"
                " Today's figures per clerk, with mean attitude and efficiency where terminals"
                " rate them apart; an empty staff number is nobody logged in.",
                "staff",
            ),
        ),
        (
            Panel(
                "table",
                "最新差评 Latest poor ratings",
                "最近的差评（评分≤2）及原因、窗口、营业员与时间，需当日回访。"
                " The latest poor ratings with reason, counter, clerk and time, for same-day"
                " follow-up.",
                (
                    Query(
                        'SELECT "score" AS "评分", "reason" AS "原因", "site" AS "营业厅", '
                        '"counter" AS "窗口", "staff" AS "营业员" FROM rating '
                        f'WHERE {HONEST} AND "poor" = 1 ORDER BY time DESC LIMIT 50'
                    ),
                ),
                width=24,
                height=9,
            ),
        ),
    ),
)

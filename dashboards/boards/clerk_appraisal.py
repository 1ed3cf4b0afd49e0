"""员工考核 Clerk appraisal: a month per clerk and per hall, as `svc-appraisal` stored it.

The month's figures are computed once by the appraisal job (dashboards/appraisal.py) into
the `appraisal` and `appraisal_hours` measurements, so every panel reads a few hundred
points instead of a month of ratings, and shows exactly what the export holds.
"""

from dashboards.appraisal import ASPECT_NAMES, REASON_NAMES
from dashboards.model import Dashboard, Panel, Query, Variable

MONTH = "\"month\" = '$month'"
CLERKS = f'{MONTH} AND "scope" = \'clerk\' AND "site" =~ /^$site$/ AND "staff" =~ /^$staff$/'
HALLS = f'{MONTH} AND "scope" = \'hall\' AND "site" =~ /^$site$/'
# a clerk's row over every hall has no site tag: the hall variable lists real halls only
EVERYWHERE = f'{MONTH} AND "scope" = \'clerk_all\' AND "staff" =~ /^$staff$/'
REASONS = tuple((f"reason_{reason}", name) for reason, name in REASON_NAMES.items())
WEEKDAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
MONTH_FIGURES = (
    'last("rated") AS "有效评价", last("satisfied") AS "满意", '
    'last("satisfaction") * 100 AS "满意率", last("wilson_low") * 100 AS "威尔逊下限", '
    'last("rank") AS "排名", last("poor") AS "差评", '
    + ", ".join(f'last("{field}") AS "{name}"' for field, name in REASONS)
    + ', last("participation") * 100 AS "参评率", last("skipped") AS "未评", '
    'last("suspect") AS "可疑", last("excluded") AS "申诉剔除", '
    + ", ".join(f'last("{aspect}_mean") AS "{name}"' for aspect, name in ASPECT_NAMES.items())
)

DASHBOARD = Dashboard(
    uid="svc-clerk-appraisal",
    title="员工考核 Clerk appraisal",
    description=(
        "月度员工考核（分厅及跨厅汇总）：有效评价、满意率及其威尔逊下限、排名、差评原因、参评率、"
        "未评、可疑与申诉剔除数，分项评价的服务态度与工作效率平均分；"
        "数据由 svc-appraisal 每月生成。 The month per clerk, in each hall and over every hall:"
        " ratings, satisfaction with its Wilson lower bound, rank, poor-rating reasons,"
        " participation, skipped and suspect counts and the ratings upheld appeals took out,"
        " mean attitude and efficiency where rated apart; written by svc-appraisal."
    ),
    time_from="now-1y",
    variables=(
        Variable(
            "month",
            "月份 Month",
            'SHOW TAG VALUES FROM "appraisal" WITH KEY = "month"',
            multi=False,
            newest_first=True,
        ),
        Variable(
            "site",
            "营业厅 Hall",
            f'SHOW TAG VALUES FROM "appraisal" WITH KEY = "site" WHERE {MONTH}',
        ),
        Variable(
            "staff",
            "营业员 Clerk",
            f'SHOW TAG VALUES FROM "appraisal" WITH KEY = "staff" WHERE {MONTH} '
            'AND "site" =~ /^$site$/',
        ),
    ),
    rows=(
        (
            Panel(
                "table",
                "员工月度考核 Clerks this month",
                "每位营业员在每个营业厅一行（按工号，不论所在窗口）；该厅有效评价少于最低样本数者"
                "不排名；威尔逊下限与有效评价都相同者并列同一名次（1, 2, 2, 4）。"
                " One row per clerk in each hall, whichever counters they sat at; clerks under"
                " the minimum sample in that hall are listed but not ranked; equal Wilson lower"
                " bound and ratings share a rank (1, 2, 2, 4).",
                (
                    Query(
                        f'SELECT {MONTH_FIGURES} FROM "appraisal" '
                        f'WHERE {CLERKS} GROUP BY "site", "staff"'
                    ),
                ),
                width=24,
                height=12,
                decimals=1,
                options={"sortBy": [{"displayName": "排名", "desc": False}]},
            ),
        ),
        (
            Panel(
                "table",
                "跨厅汇总 Clerks over every hall",
                "所选营业员本月在全部营业厅的合计（不受营业厅筛选），另行排名，最低样本数按合计计；"
                "在多个营业厅工作者每厅可能不足而合计排名。"
                " The selected clerks' month over every hall (the hall picked does not narrow"
                " it), ranked among themselves with the minimum sample applied to the total: a"
                " clerk working in several halls may be under it in each and ranked here.",
                (
                    Query(
                        f'SELECT {MONTH_FIGURES} FROM "appraisal" '
                        f'WHERE {EVERYWHERE} GROUP BY "staff"'
                    ),
                ),
                width=24,
                height=8,
                decimals=1,
                options={"sortBy": [{"displayName": "排名", "desc": False}]},
            ),
        ),
        (
            Panel(
                "barchart",
                "营业厅对比 Halls side by side",
                "各营业厅本月满意率及其威尔逊下限（含无人登录时的评价）。"
                " Each hall's satisfaction and its Wilson lower bound this month, ratings with"
                " nobody logged in included.",
                (
                    Query(
                        'SELECT last("satisfaction") * 100 AS "满意率", '
                        'last("wilson_low") * 100 AS "威尔逊下限", last("rated") AS "有效评价" '
                        f'FROM "appraisal" WHERE {HALLS} GROUP BY "site"'
                    ),
                ),
                width=12,
                height=9,
                unit="percent",
                options={"xField": "site", "orientation": "horizontal"},
            ),
            Panel(
                "piechart",
                "差评原因 Poor-rating reasons",
                "所选营业员本月差评的原因。 Reasons given for the selected clerks' poor ratings.",
                (
                    Query(
                        "SELECT "
                        + ", ".join(f'sum("{field}") AS "{name}"' for field, name in REASONS)
                        + f' FROM "appraisal" WHERE {CLERKS}'
                    ),
                ),
                width=12,
                height=9,
                options={"reduceOptions": {"calcs": ["lastNotNull"], "values": True}},
            ),
        ),
        (
            Panel(
                "table",
                "时段热力 Hour of day by weekday",
                "所选营业员本月各时段（行：小时，列：星期）的有效评价数，颜色越深越多。"
                " The selected clerks' ratings this month by hour of day (rows) and weekday"
                " (columns); darker is more.",
                (
                    Query(
                        "SELECT "
                        + ", ".join(f'sum("d{i + 1}") AS "{day}"' for i, day in enumerate(WEEKDAYS))
                        + f' FROM "appraisal_hours" WHERE {CLERKS} GROUP BY "hour"'
                    ),
                ),
                width=24,
                height=10,
                overrides=tuple(
                    {
                        "matcher": {"id": "byName", "options": day},
                        "properties": [
                            {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                            {"id": "color", "value": {"mode": "continuous-BlYlRd"}},
                        ],
                    }
                    for day in WEEKDAYS
                ),
            ),
        ),
    ),
)

"""设备状态 Terminal health: which terminals are online, and how each is doing.

Read from the `device` points the collector makes of telemetry, state and last wills.
A terminal offline during opening hours is what this board is for: the offline count turns
red, the table marks the row, and the `terminal-offline` alert rule (muted outside opening
hours) tells the hall.
"""

from dashboards.model import Dashboard, Panel, Query, Variable

PICKED = '$timeFilter AND "site" =~ /^$site$/ AND "device" =~ /^$device$/'
LATEST = f'(SELECT last("online") AS "online" FROM device WHERE {PICKED} GROUP BY "device")'
ONLINE_MAP = (
    {
        "type": "value",
        "options": {
            "0": {"text": "离线 offline", "color": "red", "index": 0},
            "1": {"text": "在线 online", "color": "green", "index": 1},
        },
    },
)


def _over_time(title: str, description: str, influxql: str, unit: str = "none") -> Panel:
    return Panel(
        "timeseries",
        title,
        description,
        (Query(influxql, table=False),),
        width=8,
        height=8,
        unit=unit,
        max_points=200,  # a line a terminal: a point every couple of minutes over 6 hours
    )


DASHBOARD = Dashboard(
    uid="svc-terminal-health",
    title="设备状态 Terminal health",
    description=(
        "评价终端在线状态、最后上报、信号、内存、队列、电池、误按、卡键、丢弃评价与固件版本。"
        " Each terminal: online or offline, last seen, RSSI, free heap, queue, battery, stray"
        " presses, stuck keys, dropped ratings and firmware."
    ),
    time_from="now-6h",
    refresh="1m",
    variables=(
        Variable(
            "site",
            "营业厅 Hall",
            'SHOW TAG VALUES FROM "device" WITH KEY = "site"',
            include_all=False,  # one hall's terminals; several may be picked
        ),
        Variable(
            "counter",
            "窗口 Counter",
            'SHOW TAG VALUES FROM "rating" WITH KEY = "counter" WHERE "site" =~ /^$site$/',
        ),
        Variable(  # a terminal serves a counter, as its ratings say; with every counter, every
            # terminal that ever reported is listed too (device points have no counter tag)
            "device",
            "终端 Terminal",
            'SHOW TAG VALUES FROM "rating", "device" WITH KEY = "device" '
            'WHERE "site" =~ /^$site$/ AND "counter" =~ /^$counter$/',
            all_means_any=False,  # All: the terminals of the counters picked
        ),
    ),
    rows=(
        (
            Panel(
                "stat",
                "在线 Online",
                "最近一次报告为在线的终端数。 Terminals whose latest report says online.",
                (Query(f'SELECT count("online") FROM {LATEST} WHERE "online" = 1'),),
                width=6,
                height=4,
                thresholds=((None, "green"),),
            ),
            Panel(
                "stat",
                "离线 Offline",
                "最近一次为离线（遗嘱消息）的终端数；营业时间内应为0。"
                " Terminals whose latest report is offline (their last will); 0 in opening hours.",
                (Query(f'SELECT count("online") FROM {LATEST} WHERE "online" = 0'),),
                width=6,
                height=4,
                thresholds=((None, "green"), (1.0, "red")),
            ),
            Panel(
                "table",
                "最后上报 Last seen",
                "每台终端最后一次遥测的时间与运行时长。"
                " When each terminal last reported, and its uptime then.",
                (
                    Query(
                        'SELECT last("uptime_s") AS "运行秒数 uptime_s" FROM device '
                        f'WHERE {PICKED} GROUP BY "site", "device"'
                    ),
                ),
                width=12,
                height=4,
            ),
        ),
        (
            Panel(
                "table",
                "终端 Terminals",
                "每台终端的最新状态；离线行标红；升级：最近一次远程升级的结果。 Each terminal's "
                "latest state, offline in red; 升级: its last update over the air (ok, trial, "
                "refused, failed, rolled_back).",
                (
                    Query(
                        'SELECT last("online") AS "在线", last("rssi") AS "RSSI", '
                        'last("heap_free") AS "空闲内存", last("queue") AS "队列", '
                        'last("battery_mv") AS "电池mV", last("stuck_keys") AS "卡键", '
                        'last("dropped") AS "丢弃", spread("stray") AS "误按", '
                        'last("fw") AS "固件", last("update") AS "升级" '
                        f'FROM device WHERE {PICKED} GROUP BY "site", "device"'
                    ),
                ),
                width=16,
                height=10,
                mappings=ONLINE_MAP,
                overrides=(
                    {
                        "matcher": {"id": "byName", "options": "在线"},
                        "properties": [
                            {"id": "custom.cellOptions", "value": {"type": "color-background"}}
                        ],
                    },
                ),
            ),
            Panel(
                "piechart",
                "固件版本 Firmware",
                "各固件版本的终端数。 Terminals per firmware version.",
                (
                    Query(
                        f'SELECT last("fw") AS "固件" FROM device WHERE {PICKED} GROUP BY "device"'
                    ),
                ),
                width=8,
                height=10,
                transformations=(
                    {
                        "id": "groupBy",
                        "options": {
                            "fields": {
                                "固件": {"operation": "groupby"},
                                "device": {"operation": "aggregate", "aggregations": ["count"]},
                            }
                        },
                    },
                ),
            ),
        ),
        (
            _over_time(
                "信号 RSSI",
                "Wi-Fi 信号强度。 Wi-Fi signal strength.",
                'SELECT mean("rssi") FROM device '
                f'WHERE {PICKED} GROUP BY time($__interval), "device" fill(none)',
                unit="dBm",
            ),
            _over_time(
                "待发队列 Queue",
                "终端闪存中待发送的评价数；持续增长说明无法送达。"
                " Ratings waiting in a terminal's flash; growing means they cannot get through.",
                'SELECT max("queue") FROM device '
                f'WHERE {PICKED} GROUP BY time($__interval), "device" fill(none)',
            ),
            _over_time(
                "空闲内存 Free heap",
                "终端空闲内存。 A terminal's free heap.",
                'SELECT min("heap_free") FROM device '
                f'WHERE {PICKED} GROUP BY time($__interval), "device" fill(none)',
                unit="bytes",
            ),
        ),
    ),
)

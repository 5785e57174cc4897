"""The built-in templates: every town's version 1 of each key, in zh-CN and en.

Texts name places and times, never a person: an SMS is read on a lock screen, and the
health of a neighbour is nobody's business there."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BuiltIn:
    key: str
    description: str
    variables: dict[str, str]
    texts: dict[str, str] = field(default_factory=dict)


BUILT_INS: tuple[BuiltIn, ...] = (
    BuiltIn(
        "sealed",
        "A building or unit is sealed: its residents stay at home",
        {"area": "str", "time": "datetime"},
        {
            "zh-CN": "{area}自{time}起实行封控管理，请您居家不外出，核酸采样和生活物资将送到门口。",
            "en": "{area} is sealed from {time}: please stay at home. Testing and supplies "
            "will come to your door.",
        },
    ),
    BuiltIn(
        "zone_changed",
        "A building or unit changed zone level (other than sealed)",
        {"area": "str", "level": "zone_level", "time": "datetime"},
        {
            "zh-CN": "{area}自{time}起调整为{level}，请留意社区通知。",
            "en": "{area} is {level} from {time}. Please follow the committee's notices.",
        },
    ),
    BuiltIn(
        "round_scheduled",
        "A screening round over the residents' place",
        {"round": "str", "start": "datetime", "end": "datetime"},
        {
            "zh-CN": "全员核酸检测「{round}」将于{start}至{end}进行，"
            "请携带身份证按楼栋时段到采样点，行动不便者请联系楼组长。",
            "en": "Screening round {round}: {start} to {end}. Bring your ID to the sampling "
            "site at your building's time; if you cannot walk there, call your building leader.",
        },
    ),
    BuiltIn(
        "pool_positive",
        "A pooled tube was positive: its members are retested at the door",
        {"time": "datetime"},
        {
            "zh-CN": "您{time}的混采检测需要复核，请留在家中不要外出，工作人员将上门单管采样。",
            "en": "Your pooled test of {time} needs a retest: stay at home, staff will come to "
            "your door to test you again.",
        },
    ),
    BuiltIn(
        "case_confirmed",
        "A case was confirmed: the committee's staff and the town's operators",
        {"compound": "str", "building": "str", "time": "datetime"},
        {
            "zh-CN": "{compound}{building}号楼{time}确诊阳性一例，请立即落实封控、流调和转运。",
            "en": "A case was confirmed in {compound}, building {building} at {time}: seal, "
            "trace and arrange the transfer now.",
        },
    ),
    BuiltIn(
        "request_assigned",
        "A help request was assigned to a volunteer",
        {"request": "request_kind", "area": "str", "due": "datetime"},
        {
            "zh-CN": "您有一项新的代跑任务：{request}，地点{area}，请在{due}前完成。",
            "en": "New errand for you: {request} at {area}, due by {due}.",
        },
    ),
    BuiltIn(
        "request_done",
        "A resident's help request was done",
        {"request": "request_kind"},
        {
            "zh-CN": "您的求助「{request}」已完成，如有问题请联系楼组长。",
            "en": "Your request ({request}) is done. Call your building leader if anything "
            "is wrong.",
        },
    ),
    BuiltIn(
        "request_overdue",
        "A help request is overdue: its grid leader",
        {"request": "request_kind", "area": "str", "due": "datetime"},
        {
            "zh-CN": "求助「{request}」（{area}）已超过{due}仍未完成，请跟进。",
            "en": "Request {request} at {area} was due by {due} and is not done: please follow "
            "it up.",
        },
    ),
    BuiltIn(
        "distribution_planned",
        "A distribution of supply packages was planned: the building leaders",
        {"plan": "str", "count": "int"},
        {
            "zh-CN": "物资发放「{plan}」已安排，本小区共{count}户，请组织志愿者按户送到门口。",
            "en": "Distribution {plan} is planned for {count} households of the compound: "
            "please organise the volunteers to deliver to the doors.",
        },
    ),
    BuiltIn(
        "distribution_cancelled",
        "A planned distribution was cancelled: the building leaders who heard it planned",
        {"plan": "str", "count": "int"},
        {
            "zh-CN": "物资发放「{plan}」已取消，本小区尚未送达的{count}户不再发放，"
            "请通知志愿者停止配送。",
            "en": "Distribution {plan} is cancelled: the {count} households of the compound "
            "not yet delivered will not be. Please tell the volunteers to stop.",
        },
    ),
    BuiltIn(
        "transfer_overdue",
        "A case's transfer is overdue: the town's operators",
        {"compound": "str", "due": "datetime"},
        {
            "zh-CN": "{compound}一名阳性人员的转运已超过{due}仍未完成，请立即协调。",
            "en": "A case's transfer in {compound} was due by {due} and has not happened: "
            "arrange it now.",
        },
    ),
)

BY_KEY = {template.key: template for template in BUILT_INS}

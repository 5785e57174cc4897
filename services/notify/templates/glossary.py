"""The words a text shows for a value that events carry as a code: a variable typed with
one of these names takes only its values and renders each as its locale's word (Chinese in
a Chinese text, plain English in an English one), never the code's snake_case.

Each table covers every value of the contract it names (``tests/unit/test_notify_texts.py``
renders every template with each)."""

NAMES: dict[str, dict[str, dict[str, str]]] = {
    # shared.contracts.registry.ZoneLevelName, and "lifted" for a zone lifted (no level).
    "zone_level": {
        "zh-CN": {
            "sealed": "封控区",
            "controlled": "管控区",
            "precaution": "防范区",
            "lifted": "解除管控",
        },
        "en": {
            "sealed": "a sealed zone",
            "controlled": "a controlled zone",
            "precaution": "a precaution zone",
            "lifted": "no longer zoned",
        },
    },
    # shared.contracts.logistics.RequestKind: what a help request asks for.
    "request_kind": {
        "zh-CN": {
            "medicine_run": "代配药",
            "baby_supplies": "母婴用品",
            "groceries": "生活物资",
            "medical_transport": "就医接送",
            "other": "其他事项",
        },
        "en": {
            "medicine_run": "medicine run",
            "baby_supplies": "baby supplies",
            "groceries": "groceries",
            "medical_transport": "medical transport",
            "other": "other errand",
        },
    },
}


def values_of(kind: str) -> tuple[str, ...]:
    """The codes a variable of this type takes."""
    return tuple(NAMES[kind]["en"])

"""The plain Python models Modelina generates (package `asyncapimodels`) as they are: every
module imports, and every example frame of the contract builds its model, whose attributes carry
the wire's names (`room_name` stays `room_name`) and the frame's values.

Usage: python modelina_models.py FRAMES.json   (the package's parent directory on PYTHONPATH),
where FRAMES.json is a list of {"model": "RoomChatMessage", "frame": {...}}.
"""

import importlib
import json
import re
import sys


def module_of(model: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", model).lower()


def check(actual: object, expected: object, path: str) -> None:
    """`actual` (a model, or a plain value) holds `expected` (decoded JSON) under its wire names."""
    if isinstance(expected, dict) and not isinstance(actual, dict):
        for key, value in expected.items():
            assert hasattr(actual, key), f"{path}: no attribute {key!r} on {type(actual).__name__}"
            check(getattr(actual, key), value, f"{path}.{key}")
    elif isinstance(expected, list) and isinstance(actual, list):
        assert len(actual) == len(expected), f"{path}: {actual!r} != {expected!r}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            check(a, e, f"{path}[{i}]")
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def main(frames_path: str) -> None:
    with open(frames_path, encoding="utf-8") as f:
        cases = json.load(f)
    for case in cases:
        model, frame = case["model"], case["frame"]
        cls = getattr(importlib.import_module(f"asyncapimodels.{module_of(model)}"), model)
        check(cls(frame), frame, model)
    print(f"built {len(cases)} frames with their wire names")


if __name__ == "__main__":
    main(sys.argv[1])

"""Label lists whose lines carry their class id ('12  stop sign', '12: stop sign'), placed by id."""

from __future__ import annotations

import re

ID_LINE = re.compile(r"^\s*(\d+)\s*[:,]?\s+(\S.*?)\s*$")
MAX_ID = 100_000


def indexed_labels(labels: list[str]) -> list[str]:
    """`labels` as given, unless every line starts with an id: then names placed at their ids
    (COCO's 90-id scheme skips ids; the gaps read 'class N'), so class ids index the list."""
    matches = [ID_LINE.match(line) for line in labels]
    if not labels or not all(matches):
        return labels
    by_id = {int(m.group(1)): m.group(2) for m in matches if m}
    if len(by_id) != len(labels) or max(by_id) > MAX_ID:
        return labels
    return [by_id.get(i, f"class {i}") for i in range(max(by_id) + 1)]

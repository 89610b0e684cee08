"""docs/quality.md opens with one row per change; each row cites the line that holds its figure."""

import re
from pathlib import Path

QUALITY = Path(__file__).resolve().parents[1] / "docs" / "quality.md"


def test_every_row_of_the_index_cites_a_line_with_its_figures():
    lines = QUALITY.read_text().split("\n")
    start = lines.index("## Every change at a glance")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("## "))
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[start:end] if line.startswith("| ")]
    rows = [r for r in rows if len(r) == 7 and r[-1].isdigit()]
    assert len(rows) > 100
    for row in rows:
        cited = int(row[-1])
        assert end < cited <= len(lines), row
        figures = re.findall(r"\d+\.\d+", row[3] + " " + row[4])
        assert not figures or any(f in lines[cited - 1] for f in figures), \
            f"line {cited} holds none of {figures}: {row[1]} (lines added above it? renumber the index)"

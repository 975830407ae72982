"""docs/benchmarks.md's analysis is loadtests/results/ANALYSIS.md: the report (loadtests/bench/report.py)
rewrites the whole page from the results and that file, so what is written only in the page is
lost at the next `python -m loadtests.bench`."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEADING = "\n## Analysis\n"


def test_the_pages_analysis_is_the_one_the_report_appends() -> None:
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    assert page.count(HEADING) == 1, "the report writes one Analysis section, last"
    in_page = page[page.index(HEADING) + len(HEADING) :].strip()
    source = (ROOT / "loadtests" / "results" / "ANALYSIS.md").read_text().strip()
    assert in_page == source, "edit loadtests/results/ANALYSIS.md, then copy it under the page's Analysis heading"

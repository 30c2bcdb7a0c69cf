"""The one-page report of a run folder: `python -m workbench.report --run runs/demo`."""

from workbench.report.build import build_report, write_report

__all__ = ["build_report", "write_report"]

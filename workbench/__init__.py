"""The top floor: the researcher's API (`Workbench`), the report and the notebooks' helpers.

    from workbench import Workbench
    wb = Workbench.load("tinycosy")
"""

from workbench.api import Audio, Readings, Steer, Workbench

__all__ = ["Audio", "Readings", "Steer", "Workbench"]

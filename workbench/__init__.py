"""The top floor: the researcher's API (`Workbench`), the report and the notebooks' helpers.

    from workbench import Workbench
    wb = Workbench.load("tinycosy")
"""

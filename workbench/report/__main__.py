from interp.cli import run_cli
from workbench.report.build import main

run_cli(main)

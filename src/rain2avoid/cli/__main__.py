"""``python -m rain2avoid.cli``."""

from . import main

main()

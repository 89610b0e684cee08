"""``python -m rain2avoid``: the ``rain2avoid`` command, for when its script is not on PATH."""

from .cli import main

if __name__ == "__main__":
    main()

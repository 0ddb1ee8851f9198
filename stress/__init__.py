"""Long runs behind ``make stress``: what the limits of README "Bounds" hold to, measured."""
